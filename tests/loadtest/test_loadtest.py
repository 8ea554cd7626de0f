"""`opsline loadtest` against a real server: reports, SLO verdicts both ways, MLflow attach."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsline.loadtest import report
from tests.cli.runner import opsline


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(trained_workspace: Path) -> Iterator[str]:
    """The real house_price app (production model of the trained workspace) on a free port."""
    import uvicorn

    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings

    port = _free_port()
    app = create_app(ServingSettings(ui=False, log_level="warning"))
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_loose_slo_passes_writes_reports_and_attaches(
    server: str, trained_workspace: Path, tmp_path: Path
) -> None:
    from opsline.tracking.runs import client

    out = tmp_path / "report"
    result = opsline(
        "loadtest",
        "house_price",
        "--host",
        server,
        "--users",
        "4",
        "--spawn-rate",
        "4",
        "--duration",
        "6",
        "--slo-p95-ms",
        "60000",
        "--max-error-rate",
        "0.2",
        "--batch-size",
        "8",
        "--out",
        str(out),
        home=trained_workspace,
    )
    assert result.returncode == 0, result.stderr
    assert "SLO: pass" in result.stdout
    for name in ("locust_stats.csv", "report.html", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slo"]["passed"] is True
    predict = summary["endpoints"]["/predict"]
    assert predict["requests"] > 0 and predict["failures"] == 0
    assert {"/predict/batch", "/health", "/metrics", "Aggregated"} <= set(summary["endpoints"])
    # The served version now carries its measured latency and the report files.
    name, version = summary["model"]["name"], summary["model"]["version"]
    tags = client().get_model_version(name, version).tags
    assert float(tags["loadtest.p95_ms"]) == predict["p95_ms"]
    assert tags["loadtest.slo"].startswith("pass")
    artifacts = [
        a.path for a in client().list_artifacts(summary["model"]["run_id"], tags["loadtest.report"])
    ]
    assert f"{tags['loadtest.report']}/summary.json" in artifacts


def test_impossible_slo_exits_1_with_one_sentence(
    server: str, trained_workspace: Path, tmp_path: Path
) -> None:
    result = opsline(
        "loadtest",
        "house_price",
        "--host",
        server,
        "--users",
        "2",
        "--spawn-rate",
        "2",
        "--duration",
        "4",
        "--slo-p95-ms",
        "0.001",
        "--no-attach",
        "--out",
        str(tmp_path / "r"),
        home=trained_workspace,
    )
    assert result.returncode == 1, result.stderr
    assert "Error: SLO broken: /predict p95" in result.stderr
    assert "> 0.001 ms" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_host_exits_2_with_one_sentence(isolated_home: Path) -> None:
    host = f"http://127.0.0.1:{_free_port()}"
    result = opsline(
        "loadtest", "house_price", "--host", host, "--duration", "2", home=isolated_home
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: Cannot reach {host}: connection refused. Is the "
        "server running? Start one with `opsline serve "
        "house_price`."
    )


STATS = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,\
80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,/health,10,0,1,1.2,0,3,15,2.0,0,1,1,1,1,2,2,3,3,3,3,3
POST,/predict,90,3,12,14.0,5,80,40,18.0,0.6,12,13,14,15,20,30,60,80,80,80,80
POST,/predict/batch,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
,Aggregated,100,3,11,12.7,0,80,37,20.0,0.6,11,12,13,14,19,29,55,80,80,80,80
"""


@pytest.mark.parametrize(
    ("slo", "max_errors", "passed", "broken"),
    [
        (None, None, True, []),
        (30, 0.05, True, []),
        (29, 0.05, False, ["/predict p95 30 ms > 29 ms"]),
        (30, 0.01, False, ["error rate 3.00% > 1.00%"]),
    ],
)
def test_verdict_judges_predict_p95_and_overall_errors(
    tmp_path: Path, slo, max_errors, passed, broken
) -> None:
    (tmp_path / "s.csv").write_text(STATS)
    rows = report.parse_stats(tmp_path / "s.csv")
    assert rows["/predict/batch"].p95_ms is None and rows["Aggregated"].requests == 100
    verdict = report.verdict(rows, slo, max_errors)
    assert verdict.passed is passed and verdict.broken == broken
    assert verdict.checked is (slo is not None)
