"""`opsline stack up|status|down`: idempotent, honest status, and faults as one sentence."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Stack, cli, free_ports, public_dir, write_config


def test_up_again_says_so_and_status_prints_the_env(stack: Stack) -> None:
    again = cli("stack", "up", "--config", str(stack.config), home=stack.home)
    assert again.returncode == 0
    assert "already running" in again.stderr
    status = cli("stack", "status", "--config", str(stack.config), home=stack.home)
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("healthy") == 3
    s = stack.settings
    for line in (
        f"export OPSLINE_TRACKING_URI={s.tracking_uri}",
        f"export MLFLOW_S3_ENDPOINT_URL={s.s3_endpoint}",
        f"export OPSLINE_PREDICTION_LOG_URI={s.pg_uri(s.opsline_db)}",
        f"export AWS_ACCESS_KEY_ID={s.access_key}",
    ):
        assert line in status.stdout


@pytest.fixture
def spare(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Another stack's config (own dir and free ports) that nothing is running for."""
    root = public_dir("opsline-spare-")
    config = write_config(root / "stack.yaml", root / "stack", free_ports(10))
    yield config, root / "stack"
    cli("stack", "down", "--config", str(config), home=tmp_path)  # whatever a failure left
    shutil.rmtree(root, ignore_errors=True)


def _one_error(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _nothing_running(stack_dir: Path) -> None:
    from opsline.stack.processes import Service, pid_of

    for key in ("postgres", "s3", "mlflow"):
        assert pid_of(Service(key, key, stack_dir)) is None, key


def test_a_taken_port_is_named(spare: tuple[Path, Path], tmp_path: Path) -> None:
    import yaml

    config, stack_dir = spare
    port = yaml.safe_load(config.read_text())["postgres"]["port"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        error = _one_error(cli("stack", "up", "--config", str(config), home=tmp_path))
    assert f"Port {port} on 127.0.0.1, needed by PostgreSQL, is already in use" in error
    assert "postgres.port" in error and str(config) in error
    _nothing_running(stack_dir)


def _postgres_user() -> pwd.struct_passwd:
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_data_dir_of_another_user_is_refused(spare: tuple[Path, Path], tmp_path: Path) -> None:
    config, stack_dir = spare
    (stack_dir / "postgres").mkdir(parents=True)
    os.chown(stack_dir / "postgres", 65534, 65534)  # nobody
    error = _one_error(cli("stack", "up", "--config", str(config), home=tmp_path))
    assert f"PostgreSQL data dir {stack_dir / 'postgres'} is owned by" in error
    assert "not postgres who runs the server" in error
    _nothing_running(stack_dir)


def test_a_server_that_fails_to_start_names_its_log(
    spare: tuple[Path, Path], tmp_path: Path
) -> None:
    config, stack_dir = spare
    # A data directory that claims to be initialised but holds no configuration: the real
    # PostgreSQL refuses to start.
    data = stack_dir / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    user = _postgres_user()
    for path in (data.parent, data, data / "PG_VERSION"):
        os.chown(path, user.pw_uid, user.pw_gid)
    data.chmod(0o700)
    error = _one_error(cli("stack", "up", "--config", str(config), home=tmp_path))
    log = stack_dir / "logs" / "postgres.log"
    assert f"PostgreSQL failed to start (exit code 2); see its log {log}." in error
    assert "postgresql.conf" in log.read_text()
    _nothing_running(stack_dir)
    status = cli("stack", "status", "--config", str(config), home=tmp_path)
    assert status.returncode == 1 and status.stdout.count("stopped") == 3
    down = cli("stack", "down", "--config", str(config), home=tmp_path)
    assert down.returncode == 0 and "Nothing of the stack was running" in down.stdout
