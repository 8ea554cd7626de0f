"""SIGTERM drains: every request the server accepted is answered before the process exits;
a full queue answers 503 with Retry-After."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .conftest import stub_client

SLOW_APP = Path(__file__).with_name("slow_app.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sigterm_answers_every_accepted_request_before_exit(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(SLOW_APP), str(tmp_path), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        # 8 requests at 2 rows per 0.3 s batch: ~1.2 s of work is queued when SIGTERM lands.
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(httpx.post, f"{url}/predict", json={"x": i}, timeout=30)
                for i in range(8)
            ]
            time.sleep(0.4)
            server.send_signal(signal.SIGTERM)
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 8
        assert [r.json()["y"] for r in responses] == [i + 1 for i in range(8)]
        # Uvicorn re-raises the signal after its graceful shutdown, so "killed by SIGTERM"
        # after answering everything is the clean exit.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_full_queue_answers_503_with_retry_after(stub_model_dir: Path) -> None:
    with stub_client(str(stub_model_dir), batch_max_queue=3) as client:
        response = client.post("/predict/batch", json={"items": [{"x": 1}] * 4})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "overloaded" in response.json()["detail"]
        assert client.post("/predict/batch", json={"items": [{"x": 1}] * 3}).status_code == 200
