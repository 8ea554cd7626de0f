"""The container images users build (deploy/docker/), checked statically: no Docker engine
here, so hadolint lints them; every COPY source exists and is not dockerignored; the build
is multi-stage from the lock; a numeric non-root user; the port and the HEALTHCHECK target;
the compose file builds these images. Running their commands: test_docker_run.py. The
Kubernetes manifests: test_k8s_*.py and test_kserve.py; the Prometheus/Grafana files:
tests/monitoring/."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfiles import (
    DOCKERFILES,
    ROOT,
    SERVE,
    TRAIN,
    healthcheck_command,
    parse_dockerfile,
    runtime,
    venv_tool,
)


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


def test_serve_healthcheck_targets_ready() -> None:
    command = healthcheck_command()
    assert command[0] == "python"  # the runtime stage has python, not curl
    assert "/ready" in command[-1]


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
