"""``OPSLINE_LOG_FORMAT=json``: a real server process logs one JSON object per line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REQUEST_ID = "json-log-test-42"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_server(home: Path, log_format: str, command: list[str]) -> tuple[list[str], int]:
    """Start the server, make one request with an X-Request-ID, stop it; (stderr lines, status)."""
    port = _free_port()
    env = {
        **os.environ,
        "OPSLINE_HOME": str(home),
        "OPSLINE_LOG_FORMAT": log_format,
        "OPSLINE_PORT": str(port),
        "OPSLINE_UI": "false",
        "OPSLINE_RELOAD_INTERVAL_S": "0",
        "OPSLINE_DRIFT_INTERVAL_S": "0",
    }
    process = subprocess.Popen(
        [*command, "--port", str(port)] if command[-1] == "--factory" else command,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not start: {process.stderr.read()}")  # type: ignore[union-attr]
                time.sleep(0.2)
        status = httpx.post(
            f"http://127.0.0.1:{port}/predict",
            json={"neighborhood": "NAmes"},
            headers={"X-Request-ID": REQUEST_ID},
        ).status_code
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    return [line for line in stderr.splitlines() if line.strip()], status


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "from opsline.serving.app import serve; serve()"],
        [sys.executable, "-m", "uvicorn", "opsline.serving.app:create_app", "--factory"],
    ],
    ids=["serve", "uvicorn-factory"],
)
def test_every_line_is_json_and_the_access_line_has_the_request_id(
    isolated_home: Path, command: list[str]
) -> None:
    lines, status = _run_server(isolated_home, "json", command)
    assert status == 422  # a refused body still gets its access line
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all({"timestamp", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "uvicorn.access" and "/predict" in r["message"]]
    assert len(access) == 1 and access[0]["request_id"] == REQUEST_ID, access
    assert "422" in access[0]["message"]
    # The app's own loggers are JSON too (the empty workspace: "no model" at startup).
    assert any(r["logger"].startswith("opsline") for r in records), records
    assert any(r["logger"] == "uvicorn.error" and r["request_id"] is None for r in records)


def test_text_is_the_default(isolated_home: Path) -> None:
    lines, _ = _run_server(
        isolated_home,
        "text",
        [sys.executable, "-c", "from opsline.serving.app import serve; serve()"],
    )
    assert lines and not any(line.startswith("{") for line in lines)
