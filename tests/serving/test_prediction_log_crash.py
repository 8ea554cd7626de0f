"""Group commit survives ``kill -9``: every prediction a client was answered is in the log.

A real ``opsline serve`` process (house_price, the session's trained model) answers
concurrent ``/predict`` and ``/predict/batch`` calls and is killed with SIGKILL — no
shutdown hook, no flush, the SQLite WAL not checkpointed:

* right after the last answer arrives: the log holds one row per answered prediction;
* while traffic is still flowing (requests in flight, batches forming): every request that
  was acknowledged (a 200 carrying its ``X-Request-ID``) is in the log, the database opens
  clean (WAL recovered, integrity check ``ok``), and a server restarted on the same log
  serves and logs again.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
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


def _start(env: dict[str, str], port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "opsline", "serve", "house_price", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise AssertionError("the server did not start")
        time.sleep(0.2)


def test_kill_9_mid_traffic_loses_no_acknowledged_request(
    trained_workspace: Path, tmp_path: Path
) -> None:
    db = tmp_path / "crash-log.db"
    port = _free_port()
    env = {
        **os.environ,
        "OPSLINE_HOME": str(trained_workspace),
        "OPSLINE_UI": "false",
        "OPSLINE_PREDICTION_LOG_URI": f"sqlite:///{db}",
        "OPSLINE_RELOAD_INTERVAL_S": "0",
        "OPSLINE_DRIFT_INTERVAL_S": "0",
    }
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []  # ids the server answered 200 with (it made them)
    unanswered: list[int] = []  # per client whose call failed in transport
    refused: list[str] = []  # any answer but a 200 (there should be none)
    dead = threading.Event()

    def client(k: int) -> None:
        # Until the server is gone: each call either completes with a 200 and its id, or
        # fails in transport (in flight when the kill came, or sent after it).
        with httpx.Client(timeout=30) as http:
            i = 0
            while not dead.is_set():
                house = {**TYPICAL_HOUSE, "gr_liv_area": 900 + (k * 1000 + i) % 2000}
                i += 1
                try:
                    response = http.post(f"{url}/predict", json=house)
                except httpx.TransportError:
                    unanswered.append(k)
                    return
                if response.status_code != 200:
                    refused.append(f"{response.status_code}: {response.text[:200]}")
                    return
                acknowledged.append(response.headers["X-Request-ID"])

    server = _start(env, port)
    try:
        clients = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 400:  # well into steady traffic
            assert time.monotonic() < deadline, "traffic did not flow"
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)  # eight clients are mid-request
        assert server.wait(timeout=30) == -signal.SIGKILL
        dead.set()
        for thread in clients:
            thread.join(timeout=60)
    finally:
        dead.set()
        if server.poll() is None:
            server.kill()
            server.wait()
    assert refused == []
    answered = set(acknowledged)
    assert len(answered) == len(acknowledged) >= 400  # ids are unique
    assert unanswered  # the kill did land mid-traffic: some client lost its call
    wal = db.with_name(db.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0  # the crash left a WAL to recover

    # The log opens clean (SQLite replays the WAL) and holds every acknowledged request.
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        logged = [row[0] for row in conn.execute("SELECT request_id FROM predictions")]
    assert answered <= set(logged)
    assert len(logged) == len(set(logged))  # nothing twice
    # At most the calls that were in flight were logged without their answer arriving.
    assert len(logged) - len(answered) <= len(unanswered)

    # A server restarted on the same log serves and logs again.
    server = _start(env, port)
    try:
        response = httpx.post(f"{url}/predict", json=TYPICAL_HOUSE, timeout=30)
        assert response.status_code == 200
        new_id = response.headers["X-Request-ID"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    frame = PredictionLog.open(f"sqlite:///{db}").frame("house_price")
    assert set(frame["request_id"]) == set(logged) | {new_id}
