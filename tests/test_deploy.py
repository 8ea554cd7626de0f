"""The container images users build (deploy/docker/): no Docker engine here, so they are
checked statically (hadolint; every COPY source exists and is not dockerignored; a numeric
non-root user; the HEALTHCHECK targets /ready) and by running their commands outside a
container: the serve ENTRYPOINT line starts a real server with the image's OPSLINE_*
environment, and the HEALTHCHECK command is run against a ready and a not-ready server.
The Kubernetes manifests are tested in tests/test_deploy_k8s.py, the Prometheus/Grafana
files in tests/monitoring/."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
SERVE = DOCKER / "serve.Dockerfile"
TRAIN = DOCKER / "train.Dockerfile"
DOCKERFILES = [SERVE, TRAIN]


def venv_tool(name: str) -> str:
    """A console script of the venv: `make test` runs its python without activating it."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: it is in requirements.lock"
    return found


@dataclass
class Stage:
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                values[key] = value
        return values


def parse_dockerfile(path: Path) -> list[Stage]:
    """Instructions per build stage: comments and parser directives dropped, continuations
    joined (enough for our own files; hadolint does the full parse)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stages.append(Stage(words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def runtime(path: Path) -> Stage:
    return parse_dockerfile(path)[-1]


def image_env(path: Path) -> dict[str, str]:
    """The runtime stage's ENV without PATH (its $PATH is resolved by the engine)."""
    return {k: v for k, v in runtime(path).env().items() if k != "PATH"}


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"{args!r} is not the exec (JSON) form"
    return value


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run(
        [venv_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints() -> None:
    # Guards the test above: a Dockerfile with known faults (root user implied, unpinned
    # latest tag, shell-form CMD) must fail, or a silently broken hadolint would pass all.
    bad = "FROM python:latest\nRUN cd /tmp && pip install requests\nCMD opsline serve\n"
    result = subprocess.run(
        [venv_tool("hadolint"), "--failure-threshold", "info", "-"],
        input=bad,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3025" in result.stdout


def dockerignore_patterns() -> list[str]:
    return [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_docker_context_excludes_local_state() -> None:
    # The build context is the repository: without these the venv (GBs), the workspace
    # (models, MLflow store) and git history would be sent to the engine.
    for entry in (".venv", ".opsline", ".git"):
        assert entry in dockerignore_patterns()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_file_exists_in_the_context(dockerfile: Path) -> None:
    stages = parse_dockerfile(dockerfile)
    names = {s.name for s in stages}
    copied = 0
    for stage in stages:
        for args in stage.all("COPY"):
            words = args.split()
            if any(w.startswith("--from=") for w in words):
                source = next(w for w in words if w.startswith("--from="))[len("--from=") :]
                assert source in names, f"COPY --from={source}: no such stage"
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                # A dockerignored path is missing from the context even though it exists.
                assert not any(fnmatch.fnmatch(source, p) for p in dockerignore_patterns())
                copied += 1
    # The builder copies the lock, the project metadata, configs and the sources.
    assert copied >= 5


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_is_multi_stage_from_the_lock(dockerfile: Path) -> None:
    builder, final = parse_dockerfile(dockerfile)
    assert builder.name == "builder"
    runs = " ".join(builder.all("RUN"))
    # Exact pins, nothing resolved at build time; then the project as a real wheel install.
    assert "pip install --no-deps -r requirements.lock" in runs
    assert "pip install --no-deps --no-build-isolation ." in runs
    # The runtime stage gets the finished venv, not the sources or the build tools.
    assert final.all("COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert final.env()["PATH"].startswith("/opt/venv/bin:")
    assert "hatchling" in (ROOT / "requirements.lock").read_text()  # --no-build-isolation


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    final = runtime(dockerfile)
    users = final.all("USER")
    assert users, "the runtime stage never leaves root"
    uid, _, gid = users[-1].partition(":")
    # Numeric: Kubernetes' runAsNonRoot can only verify a numeric USER.
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    keywords = [kw for kw, _ in final.instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    # The user exists and owns the workspace it writes to.
    setup = " ".join(final.all("RUN"))
    assert f"--uid {uid}" in setup and f"chown {uid}:" in setup
    assert final.env()["OPSLINE_HOME"] == "/workspace"


def test_serve_image_exposes_the_port_it_listens_on() -> None:
    final = runtime(SERVE)
    env = final.env()
    assert final.all("EXPOSE") == [env["OPSLINE_PORT"]] == ["8000"]
    # 127.0.0.1 (the CLI default) would be unreachable from outside the container.
    assert env["OPSLINE_HOST"] == "0.0.0.0"
    assert all(
        key in {"OPSLINE_HOME", "OPSLINE_RECIPE", "OPSLINE_HOST", "OPSLINE_PORT"}
        for key in env
        if key.startswith("OPSLINE_")
    )


def healthcheck_command() -> list[str]:
    (args,) = runtime(SERVE).all("HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return exec_form(command)


def test_serve_healthcheck_targets_ready() -> None:
    command = healthcheck_command()
    assert command[0] == "python"  # the runtime stage has python, not curl
    assert "/ready" in command[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def entrypoint_server(tmp_path_factory: pytest.TempPathFactory):
    """The serve image's ENTRYPOINT line, run by sh outside a container: the image's ENV
    (host and port moved to a free local port), an empty workspace, the venv on PATH."""
    final = runtime(SERVE)
    entrypoint = exec_form(final.all("ENTRYPOINT")[-1])
    cmd = exec_form(final.all("CMD")[-1])
    port = free_port()
    env = {
        **os.environ,
        **image_env(SERVE),
        "OPSLINE_HOST": "127.0.0.1",
        "OPSLINE_PORT": str(port),
        "OPSLINE_HOME": str(tmp_path_factory.mktemp("workspace")),
        "OPSLINE_UI": "false",
        "OPSLINE_RELOAD_INTERVAL_S": "0",
        "OPSLINE_DRIFT_INTERVAL_S": "0",
    }
    env["PATH"] = f"{Path(venv_tool('opsline')).parent}:{os.environ['PATH']}"
    process = subprocess.Popen(
        entrypoint + cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                get(base + "/health")
                break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "the entrypoint did not start a server:\n"
                        + (
                            process.communicate(timeout=5)[0]
                            if process.poll() is not None
                            else "(timeout)"
                        )
                    ) from error
                time.sleep(0.2)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_entrypoint_starts_the_server_from_opsline_env(entrypoint_server) -> None:
    base, process = entrypoint_server
    assert process.poll() is None
    assert get(base + "/health") == 200
    # An empty workspace: alive, not ready (the HEALTHCHECK and k8s readiness keep it out of
    # the load balancer until a model is promoted).
    assert get(base + "/ready") == 503
    assert get(base + "/v2/health/ready") == 503


def test_serve_entrypoint_passes_extra_arguments_on() -> None:
    # `docker run opsline-serve data=grapevine` must reach `opsline serve` as an override:
    # run the same sh line with `echo` in place of opsline.
    entrypoint = exec_form(runtime(SERVE).all("ENTRYPOINT")[-1])
    line = entrypoint[2].replace("exec opsline ", "exec echo opsline ", 1)
    out = subprocess.run(
        [*entrypoint[:2], line, *entrypoint[3:], "data=grapevine"],
        env={**os.environ, **image_env(SERVE)},
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.split()
    assert out == [
        "opsline",
        "serve",
        "house_price",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "data=grapevine",
    ]


def test_healthcheck_fails_until_a_model_is_loaded(entrypoint_server) -> None:
    base, _ = entrypoint_server
    env = {**os.environ, "OPSLINE_PORT": base.rsplit(":", 1)[1]}
    command = [sys.executable if c == "python" else c for c in healthcheck_command()]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
    assert "503" in result.stderr


def test_healthcheck_passes_on_a_ready_server(tmp_path: Path) -> None:
    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings
    from tests.serving.conftest import StubRecipe, live_server

    model_dir = tmp_path / "stub-model"
    model_dir.mkdir()
    (model_dir / "stub.json").write_text(json.dumps({"slope": 2.0}))
    app = create_app(
        ServingSettings(recipe="stub", model_uri=str(model_dir), ui=False, prediction_log=False),
        recipe=StubRecipe(),
    )
    command = [sys.executable if c == "python" else c for c in healthcheck_command()]
    with live_server(app) as base:
        env = {**os.environ, "OPSLINE_PORT": base.rsplit(":", 1)[1]}
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=30, check=False
        )
    assert result.returncode == 0, result.stderr


def test_train_entrypoint_commands_exist_in_the_cli() -> None:
    final = runtime(TRAIN)
    entrypoint = exec_form(final.all("ENTRYPOINT")[-1])
    cmd = exec_form(final.all("CMD")[-1])
    assert entrypoint == ["opsline"] and cmd[0] in {"run", "train"}
    assert not final.all("EXPOSE") and not final.all("HEALTHCHECK")  # a batch job
    opsline = venv_tool("opsline")
    for command in ("run", "train"):  # the default and the one the docs show
        result = subprocess.run(
            [opsline, command, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "RECIPE" in result.stdout.upper()
    # The default recipe is a registered one.
    result = subprocess.run(
        [opsline, "recipes"], capture_output=True, text=True, timeout=60, check=True
    )
    assert cmd[1] in result.stdout


def test_compose_builds_the_images_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    for name, dockerfile in (("opsline", SERVE), ("train", TRAIN)):
        build = services[name]["build"]
        assert (ROOT / "deploy" / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == dockerfile
    # Server and trainer share the workspace (the server reloads what training promotes).
    assert services["opsline"]["volumes"] == services["train"]["volumes"]
    assert services["opsline"]["ports"] == ["8000:8000"]
