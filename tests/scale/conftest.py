"""The real stack for the session: `opsline stack up` on free ports in a temporary directory.

PostgreSQL, SeaweedFS and the MLflow server start once (about 20 s) and are stopped by
`opsline stack down` at the end, which must leave no process of theirs behind. One
`opsline run house_price model=gbm` against the server gives the tests a registered,
promoted model with its files in the bucket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from opsline.stack.settings import StackSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
OPSLINE = [sys.executable, "-m", "opsline"]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nobody listens on now (held open together, then released)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def write_config(path: Path, stack_dir: Path, ports: list[int]) -> Path:
    """A stack config like configs/stack.yaml, on ``ports`` and in ``stack_dir``."""
    raw = yaml.safe_load((REPO / "configs" / "stack.yaml").read_text())
    raw["dir"] = str(stack_dir)
    raw["postgres"]["port"], raw["s3"]["port"], raw["mlflow"]["port"] = ports[:3]
    raw["s3"]["internal_ports"] = dict(zip(raw["s3"]["internal_ports"], ports[3:10], strict=True))
    path.write_text(yaml.safe_dump(raw))
    return path


def public_dir(prefix: str) -> Path:
    """A temp dir the `postgres` user can traverse (pytest's tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def cli(
    *args: str,
    home: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``opsline ARGS`` in a subprocess with its own OPSLINE_HOME."""
    # Only what the test gives points at the stack: nothing inherited from the shell.
    full = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPSLINE_", "MLFLOW_", "AWS_"))
    }
    full.update(
        {
            "OPSLINE_HOME": str(home),
            "MLFLOW_ENABLE_TELEMETRY": "false",
            "DO_NOT_TRACK": "1",
            **(env or {}),
        }
    )
    return subprocess.run(
        [*OPSLINE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        cwd=cwd or REPO,
        check=False,
    )


def stack_groups(stack_dir: Path) -> list[int]:
    """The process groups of the stack's recorded servers (each server leads its own)."""
    import json

    return [json.loads(r.read_text())["pid"] for r in (stack_dir / "run").glob("*.json")]


def alive(groups: list[int]) -> list[int]:
    from opsline.stack.processes import group_members

    return [pid for group in groups for pid in group_members(group)]


@dataclass
class Stack:
    settings: StackSettings
    config: Path
    home: Path  # OPSLINE_HOME of the session's CLI runs (dataset prepared there)

    def env(self) -> dict[str, str]:
        return self.settings.client_env()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = public_dir("opsline-stack-")
    config = write_config(root / "stack.yaml", root / "stack", free_ports(10))
    home = tmp_path_factory.mktemp("scale-home")
    up = cli("stack", "up", "--config", str(config), home=home)
    assert up.returncode == 0, up.stderr
    settings = load_settings(config)
    groups = stack_groups(settings.dir)
    assert len(groups) == 3 and alive(groups)
    try:
        yield Stack(settings, config, home)
    finally:
        groups += stack_groups(settings.dir)  # a test may have restarted a server
        down = cli("stack", "down", "--config", str(config), home=home)
        # `stack down` stops every process it started: none of the groups survives.
        left = alive(groups)
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, down.stderr
        assert not left, f"processes left after `stack down`: {left}"


@pytest.fixture(scope="session")
def trained(stack: Stack) -> Stack:
    """`opsline run house_price model=gbm` against the stack's MLflow server."""
    result = cli(
        "run",
        "house_price",
        "model=gbm",
        "model.n_estimators=150",
        f"tracking.uri={stack.settings.tracking_uri}",
        home=stack.home,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "promoted" in result.stderr
    return stack
