"""The images' commands run outside a container: the serve ENTRYPOINT line starts a real
server with the image's OPSLINE_* environment, extra arguments reach it, the HEALTHCHECK
command fails on a server with no model and passes on a ready one, and the train image's
commands exist in the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.dockerfiles import (
    SERVE,
    TRAIN,
    exec_form,
    free_port,
    get,
    healthcheck_command,
    image_env,
    runtime,
    venv_tool,
)


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
