"""Group commit survives ``kill -9``: every prediction a client was answered is in the log.

A real ``opsline serve`` process (house_price, the session's trained model) answers
concurrent ``/predict`` and ``/predict/batch`` calls; right after the last answer arrives
the process is killed with SIGKILL — no shutdown hook, no flush — and the log must still
hold one row per answered prediction.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from opsline.monitoring.prediction_log import PredictionLog
from opsline.recipes.house_price.schemas import TYPICAL_HOUSE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_kill_9_right_after_n_answers_leaves_all_n_rows(
    trained_workspace: Path, tmp_path: Path
) -> None:
    port, uri = _free_port(), f"sqlite:///{tmp_path / 'crash-log.db'}"
    env = {
        **os.environ,
        "OPSLINE_HOME": str(trained_workspace),
        "OPSLINE_UI": "false",
        "OPSLINE_PREDICTION_LOG_URI": uri,
        "OPSLINE_RELOAD_INTERVAL_S": "0",
        "OPSLINE_DRIFT_INTERVAL_S": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "opsline", "serve", "house_price", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)

        def call(i: int) -> list[str]:
            house = {**TYPICAL_HOUSE, "gr_liv_area": 900 + i}
            if i % 4 == 0:  # every fourth call is a batch of three: ids "<id>/0..2"
                response = httpx.post(
                    f"{url}/predict/batch",
                    json={"items": [house] * 3},
                    headers={"X-Request-ID": f"crash-{i}"},
                    timeout=30,
                )
                assert response.status_code == 200
                return [f"crash-{i}/{k}" for k in range(3)]
            response = httpx.post(
                f"{url}/predict", json=house, headers={"X-Request-ID": f"crash-{i}"}, timeout=30
            )
            assert response.status_code == 200
            return [f"crash-{i}"]

        with ThreadPoolExecutor(8) as pool:
            answered = [rid for ids in pool.map(call, range(160)) for rid in ids]
        server.send_signal(signal.SIGKILL)  # the instant the last answer is in
        assert server.wait(timeout=30) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    frame = PredictionLog.open(uri).frame("house_price")
    assert len(answered) == 240  # 120 single calls + 40 batches of three
    assert set(answered) <= set(frame["request_id"])
    assert len(frame) == len(answered)  # and nothing twice
