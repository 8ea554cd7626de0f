"""deploy/prometheus/ against the real Prometheus: promtool checks, then a live scrape.

Needs the ``prometheus`` package (``/usr/bin/prometheus`` and ``promtool``): ``make
system-deps`` installs it (``sudo apt-get install prometheus`` on Debian/Ubuntu).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    # A fail, not a skip: a skipped module would let a broken deploy/prometheus/ pass.
    if PROMETHEUS is None or PROMTOOL is None:
        pytest.fail("Prometheus is not installed: `make system-deps` (apt package `prometheus`)")


def promtool(*args: str) -> str:
    done = subprocess.run(
        [PROMTOOL, *args], cwd=DEPLOY, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_config_and_rules_are_valid() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out
    assert "6 rules found" in promtool("check", "rules", "alerts.yml")


def test_alert_rules_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    probe: Callable[[], Any], what: str, timeout: float = 90, logs: Path | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
            if result:
                return result
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            tail = logs.read_text()[-3000:] if logs and logs.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.25)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture
def opsline_server(trained_workspace: Path, tmp_path: Path) -> Iterator[str]:
    """The real server (house_price, its promoted model) in a subprocess; yields host:port."""
    port = free_port()
    env = {**os.environ, "OPSLINE_HOME": str(trained_workspace), "OPSLINE_UI": "false"}
    log = tmp_path / "opsline.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "opsline.serving.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200,
            "the opsline server",
            logs=log,
        )
        yield f"127.0.0.1:{port}"
    finally:
        stop(server)


@pytest.fixture
def prometheus(opsline_server: str, tmp_path: Path) -> Iterator[str]:
    """Real Prometheus with deploy/prometheus/ (target rewritten, 1 s scrapes); yields its URL."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "opsline"]
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [opsline_server]}]
    conf_dir = tmp_path / "prometheus"
    conf_dir.mkdir()
    shutil.copy(DEPLOY / "alerts.yml", conf_dir / "alerts.yml")
    (conf_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={conf_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=conf_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: httpx.get(f"{url}/-/ready", timeout=5).status_code == 200,
            "Prometheus to be ready",
            logs=log,
        )
        yield url
    finally:
        stop(process)


def api(url: str, path: str, **params: str) -> Any:
    body = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]


def test_real_prometheus_scrapes_the_server_and_loads_the_alerts(
    prometheus: str, opsline_server: str
) -> None:
    def target_up() -> bool:
        targets = api(prometheus, "targets")["activeTargets"]
        return any(
            t["labels"]["job"] == "opsline"
            and t["health"] == "up"
            and t["labels"]["instance"] == opsline_server
            for t in targets
        )

    wait_for(target_up, "the opsline target to be up")

    def query(expr: str) -> list[dict]:
        return api(prometheus, "query", query=expr)["result"]

    loaded = wait_for(lambda: query("opsline_model_loaded"), "opsline_model_loaded")
    assert [float(r["value"][1]) for r in loaded] == [1.0]
    assert loaded[0]["metric"]["job"] == "opsline"
    # Training-pipeline figures reach Prometheus through the server: the session workspace
    # validated its house_price data before training, and it passed.
    failed = query('opsline_data_validation_failed_checks{model="house_price"}')
    assert [float(r["value"][1]) for r in failed] == [0.0]
    assert query("opsline_system_memory_total_bytes")

    groups = {
        g["name"]: {r["name"] for r in g["rules"]} for g in api(prometheus, "rules")["groups"]
    }
    assert groups == {
        "opsline-serving": {
            "OpslineHighErrorRate",
            "OpslineHighPredictLatencyP95",
            "OpslineModelNotLoaded",
            "OpslineTargetDown",
        },
        "opsline-data": {"OpslineDataValidationFailed", "OpslineDataDrift"},
    }
    # A healthy server: nothing firing.
    alerts = api(prometheus, "alerts")["alerts"]
    assert [a for a in alerts if a["state"] == "firing"] == []
