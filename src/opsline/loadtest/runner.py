"""Run a load test: preflight the host, run Locust headless in a subprocess, judge the SLO.

Locust runs as ``python -m locust`` in a child process because it monkey-patches the
interpreter with gevent on import; the opsline process only reads its CSV and HTML output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opsline.errors import OpslineError, UsageError
from opsline.loadtest import report
from opsline.workspace import home

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
CSV_PREFIX = "locust"
PREFLIGHT_TIMEOUT = 3.0


@dataclass
class LoadTestResult:
    out_dir: Path
    rows: dict[str, report.Row]
    verdict: report.Verdict
    model: dict[str, Any] | None
    attached: str
    table: str


def _why(reason: Any) -> str:
    import socket

    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {PREFLIGHT_TIMEOUT:g} s"
    if isinstance(reason, socket.gaierror):
        return "unknown host name"
    return str(reason) or type(reason).__name__


def _get(url: str) -> tuple[int, bytes]:
    """GET ``url``; HTTP errors are returned as (status, body), network errors raised."""
    try:
        with urllib.request.urlopen(url, timeout=PREFLIGHT_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def preflight(host: str, recipe: str) -> dict[str, Any] | None:
    """Check ``host`` answers ``/health`` and has a model; returns ``GET /model`` (or None).

    Raises:
        UsageError: malformed URL, unreachable host, not an opsline server, no model loaded.
    """
    parts = urllib.parse.urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--host must be a URL like http://127.0.0.1:8000, got {host!r}.")
    try:
        status, _ = _get(f"{host}/health")
    except urllib.error.URLError as error:
        raise UsageError(
            f"Cannot reach {host}: {_why(error.reason)}. Is the server running? "
            f"Start one with `opsline serve {recipe}`."
        ) from None
    except (TimeoutError, OSError) as error:
        raise UsageError(
            f"Cannot reach {host}: {_why(error)}. Is the server running? "
            f"Start one with `opsline serve {recipe}`."
        ) from None
    if status != 200:
        raise UsageError(f"{host}/health answered HTTP {status}: is it an opsline server?")
    status, body = _get(f"{host}/ready")
    if status != 200:
        detail = _detail(body)
        raise UsageError(
            f"{host} has no model loaded{f' ({detail})' if detail else ''}; "
            "a load test would only measure errors."
        )
    status, body = _get(f"{host}/model")
    try:
        return json.loads(body) if status == 200 else None
    except ValueError:
        return None


def _detail(body: bytes) -> str:
    try:
        return str(json.loads(body).get("detail") or "")
    except (ValueError, AttributeError):
        return ""


def run_locust(
    recipe: str,
    host: str,
    users: int,
    spawn_rate: float,
    duration: int,
    out_dir: Path,
    batch_size: int,
) -> None:
    """Run Locust headless for ``duration`` seconds, writing CSV + HTML into ``out_dir``."""
    env = {
        **os.environ,
        "OPSLINE_LOADTEST_RECIPE": recipe,
        "OPSLINE_LOADTEST_BATCH": str(batch_size),
    }
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{duration}s",
        "--stop-timeout",
        "2",
        "--csv",
        str(out_dir / CSV_PREFIX),
        "--html",
        str(out_dir / "report.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    log = out_dir / "locust.log"
    with open(log, "w") as handle:
        try:
            completed = subprocess.run(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=duration + 120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OpslineError(
                f"Locust did not finish within {duration + 120} s; see {log}."
            ) from None
    if completed.returncode != 0 or not (out_dir / f"{CSV_PREFIX}_stats.csv").exists():
        raise OpslineError(f"Locust failed (exit code {completed.returncode}); see {log}.")


def run_loadtest(
    recipe: str,
    host: str,
    *,
    users: int = 10,
    spawn_rate: float = 5,
    duration: int = 30,
    slo_p95_ms: float | None = None,
    max_error_rate: float | None = None,
    out: Path | None = None,
    batch_size: int = 32,
    attach: bool = True,
    tracking_uri: str | None = None,
) -> LoadTestResult:
    """Preflight, run Locust, write ``summary.json``, attach to MLflow, judge the SLO.

    The verdict is returned, not raised: the caller decides the exit code after printing.
    """
    from opsline.config import load_config
    from opsline.recipes.registry import get_recipe

    get_recipe(recipe)  # unknown recipe → UsageError with the valid names
    for name, value in (
        ("--users", users),
        ("--spawn-rate", spawn_rate),
        ("--duration", duration),
        ("--batch-size", batch_size),
    ):
        if value <= 0:
            raise UsageError(f"{name} must be positive, got {value}.")
    if slo_p95_ms is not None and slo_p95_ms <= 0:
        raise UsageError(f"--slo-p95-ms must be positive, got {slo_p95_ms}.")
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise UsageError(f"--max-error-rate is a fraction between 0 and 1, got {max_error_rate}.")
    host = host.rstrip("/")
    model = preflight(host, recipe)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(out) if out else home() / "loadtests" / f"{recipe}-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    run_locust(recipe, host, users, spawn_rate, duration, out_dir, batch_size)
    rows = report.parse_stats(out_dir / f"{CSV_PREFIX}_stats.csv")
    result = report.verdict(rows, slo_p95_ms, max_error_rate)
    settings = {
        "recipe": recipe,
        "host": host,
        "users": users,
        "spawn_rate": spawn_rate,
        "duration_s": duration,
        "batch_size": batch_size,
        "slo_p95_ms": slo_p95_ms,
        "max_error_rate": max_error_rate,
        "started": stamp,
    }
    report.write_summary(out_dir, report.summary(rows, result, settings, model))
    attached = "Not attached to MLflow (--no-attach)."
    if attach:
        uri = (
            tracking_uri
            or os.environ.get("OPSLINE_TRACKING_URI")
            or load_config(recipe).tracking.uri
        )
        artifact_path = f"loadtests/{stamp}"
        attached = report.attach(
            model,
            out_dir,
            report.version_tags(rows, result, stamp, artifact_path),
            artifact_path,
            uri,
        )
    return LoadTestResult(out_dir, rows, result, model, attached, report.table(rows))
