"""``opsline dvc init``: set up DVC in a git project and write params.yaml + dvc.yaml.

The side effects live here (git and dvc subprocesses, files); what goes into the files is
computed by :mod:`opsline.dvc.stages`. DVC is driven through its command line
(``python -m dvc``), its stable interface, with analytics off.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opsline.errors import OpslineError, UsageError

DVC_FILE, PARAMS_FILE = "dvc.yaml", "params.yaml"
REMOTE = "opsline"  # the name of the remote `opsline dvc init` sets (as DVC's default)
DEFAULT_LOCAL_REMOTE = ".opsline/dvc-remote"

_HEADER = (
    "# Written by `opsline dvc init {args}`; edit values here, then `dvc repro`.\n"
    "# Keys mirror the Hydra config. A null is the string 'null' and a list is\n"
    "# written in Hydra's syntax ('[256,128]'): DVC can pass only scalars to a command.\n"
)


@dataclass
class InitResult:
    project: Path
    stages: list[str]
    remote: str
    dvc_initialised: bool


def _env() -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1"}


def git_toplevel(cwd: Path) -> Path:
    """The git work tree ``cwd`` is in; DVC pipelines live in git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            text=True,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError("git is not installed; DVC pipelines live in a git repository.") from None
    if out.returncode != 0:
        raise UsageError(
            f"{cwd} is not inside a git repository: run `git init` first "
            f"(DVC records pipeline state next to your code in git)."
        )
    return Path(out.stdout.strip()).resolve()


def dvc(args: Sequence[str], cwd: Path) -> str:
    """Run one ``dvc`` command; a failure becomes one sentence with DVC's own message."""
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        env=_env(),
        check=False,
    )
    if out.returncode != 0:
        reason = (out.stderr.strip() or out.stdout.strip()).splitlines()
        raise OpslineError(
            f"`dvc {' '.join(args)}` failed: {reason[-1] if reason else 'no message'}"
        )
    return out.stdout


def ensure_dvc(project: Path, toplevel: Path) -> bool:
    """``dvc init`` unless the project, or a folder above it in the same git work tree,
    has ``.dvc/`` (DVC then uses that one); analytics off either way."""
    above = [project, *project.parents]
    limit = above.index(toplevel) + 1 if toplevel in above else 1
    created = not any((d / ".dvc").is_dir() for d in above[:limit])
    if created:
        dvc(["init", "--quiet"] + ([] if project == toplevel else ["--subdir"]), project)
    dvc(["config", "core.analytics", "false"], project)
    return created


def check_remote(
    url: str,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> None:
    """Refuse a remote DVC could not use, before anything is written."""
    is_s3 = url.startswith("s3://")
    if not is_s3 and "://" in url:
        raise UsageError(f"Unsupported remote {url!r}: give a local folder or s3://bucket/prefix.")
    if not is_s3 and (endpoint_url or access_key_id or secret_access_key):
        raise UsageError("--endpoint-url and the S3 keys apply to an s3:// remote only.")
    if bool(access_key_id) != bool(secret_access_key):
        raise UsageError(
            "Give both --access-key-id and --secret-access-key, or neither "
            "(then boto3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)."
        )


def set_remote(
    project: Path,
    url: str,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> str:
    """Point the default remote at ``url``: a local folder or ``s3://bucket/prefix``.

    The endpoint (not a secret) goes into ``.dvc/config``, which is committed; keys go into
    ``.dvc/config.local`` (``--local``), which DVC keeps out of git.
    """
    check_remote(url, endpoint_url, access_key_id, secret_access_key)
    if not url.startswith("s3://"):
        folder = Path(url).expanduser()
        (folder if folder.is_absolute() else project / folder).mkdir(parents=True, exist_ok=True)
        # DVC stores a relative path relative to .dvc/ (portable); ~ it would keep literally.
        url = str(folder) if folder.is_absolute() else url
    dvc(["remote", "add", "--default", "--force", REMOTE, url], project)
    if endpoint_url:
        dvc(["remote", "modify", REMOTE, "endpointurl", endpoint_url], project)
    if access_key_id and secret_access_key:
        dvc(["remote", "modify", "--local", REMOTE, "access_key_id", access_key_id], project)
        dvc(
            ["remote", "modify", "--local", REMOTE, "secret_access_key", secret_access_key], project
        )
    return url


def ignore_workspace(project: Path) -> None:
    """Keep ``.opsline/`` (MLflow store, logs, remote) out of git: DVC tracks the prepared
    data inside it by hash, and dvc.lock, params.yaml and the metrics go to git."""
    gitignore = project / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if not {".opsline", ".opsline/", "/.opsline", "/.opsline/"} & {x.strip() for x in lines}:
        prefix = "\n" if lines and lines[-1].strip() else ""
        with gitignore.open("a") as handle:
            handle.write(
                f"{prefix}# opsline's workspace (DVC tracks the data in it by hash)\n/.opsline/\n"
            )


def write_yaml(path: Path, tree: dict, header: str = "") -> None:
    import yaml

    class _Plain(yaml.SafeDumper):
        # Stages share param lists; spell each out rather than as &id001 / *id001 aliases.
        def ignore_aliases(self, data: object) -> bool:
            return True

    path.write_text(header + yaml.dump(tree, Dumper=_Plain, sort_keys=False, width=100))


def init_project(
    recipe: str,
    overrides: Sequence[str],
    *,
    cwd: Path,
    remote: str | None,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    force: bool = False,
    code_deps: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> InitResult:
    """Check everything first, then ``dvc init``, the remote, params.yaml and dvc.yaml."""
    from omegaconf import OmegaConf

    from opsline.config import load_config
    from opsline.dvc import stages as dp
    from opsline.dvc.deps import stage_code_deps
    from opsline.recipes.registry import get_recipe
    from opsline.workspace import data_dir

    project = cwd.resolve()
    toplevel = git_toplevel(project)
    if (project / DVC_FILE).exists() and not force:
        raise UsageError(
            f"{project / DVC_FILE} exists; pass --force to overwrite it (and {PARAMS_FILE})."
        )
    cfg = load_config(recipe, overrides)  # unknown recipe / model / key: UsageError here
    resolved = OmegaConf.to_container(cfg, resolve=True)
    name = get_recipe(recipe).model_name(cfg)
    prepared = data_dir(name)
    if not dp.is_inside(prepared, project):
        raise UsageError(
            f"The prepared data would go to {prepared} (OPSLINE_HOME), outside "
            f"{project}; DVC tracks outputs inside the project only, so unset "
            f"OPSLINE_HOME or point it inside the project."
        )
    check_remote(remote or DEFAULT_LOCAL_REMOTE, endpoint_url, access_key_id, secret_access_key)
    if importlib.util.find_spec("dvc") is None:
        raise OpslineError("DVC is not installed in this environment: `pip install dvc dvc-s3`.")

    params = dp.select_params(resolved)
    deps: dict[str, list[str]] = {
        "prepare": [dp.project_path(p, project) for p in dp.raw_inputs(recipe, resolved)]
    }
    if code_deps:
        for stage, paths in stage_code_deps(recipe, overrides, resolved).items():
            deps.setdefault(stage, []).extend(dp.project_path(p, project) for p in paths)
    layout = dp.default_layout(dp.project_path(prepared, project), name)
    stages = dp.build_stages(recipe, overrides, params, layout, deps)

    created = ensure_dvc(project, toplevel)
    say("Initialised DVC (analytics off)." if created else "DVC already initialised.")
    url = set_remote(
        project, remote or DEFAULT_LOCAL_REMOTE, endpoint_url, access_key_id, secret_access_key
    )
    ignore_workspace(project)
    header = _HEADER.format(args=" ".join([recipe, *overrides]))
    write_yaml(project / PARAMS_FILE, params, header)
    write_yaml(project / DVC_FILE, {"stages": stages}, header.splitlines()[0] + "\n")
    return InitResult(project, list(stages), url, created)
