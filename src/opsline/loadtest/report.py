"""Reading Locust's CSV stats, the SLO verdict, ``summary.json``, and attaching to MLflow.

The SLO's latency objective is judged on ``/predict`` (single requests), not on the
aggregate: ``/health`` and ``/metrics`` answer in about a millisecond and would hide a slow
model, and ``/predict/batch`` is a different workload whose numbers are reported alongside.
The error-rate objective is judged on all requests: any failing endpoint is a failure.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SLO_ENDPOINT = "/predict"
AGGREGATED = "Aggregated"


@dataclass
class Row:
    """One line of Locust's ``*_stats.csv`` (times in milliseconds)."""

    name: str
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float | None
    max_ms: float | None
    rps: float

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass
class Verdict:
    passed: bool
    checked: bool  # False when no SLO was given
    reasons: list[str] = field(default_factory=list)  # every objective, met or not
    broken: list[str] = field(default_factory=list)  # the objectives that were not met

    @property
    def label(self) -> str:
        if not self.checked:
            return "not set"
        return ("pass: " if self.passed else "fail: ") + "; ".join(self.reasons)


def _number(text: str | None) -> float | None:
    try:
        value = float(text)  # "N/A" when an endpoint saw no requests
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_stats(path: Path) -> dict[str, Row]:
    """Rows of Locust's ``<prefix>_stats.csv`` by request name (plus ``Aggregated``)."""
    rows: dict[str, Row] = {}
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            rows[record["Name"]] = Row(
                name=record["Name"],
                requests=int(record["Request Count"]),
                failures=int(record["Failure Count"]),
                p50_ms=_number(record.get("50%")),
                p95_ms=_number(record.get("95%")),
                p99_ms=_number(record.get("99%")),
                avg_ms=_number(record.get("Average Response Time")),
                max_ms=_number(record.get("Max Response Time")),
                rps=_number(record.get("Requests/s")) or 0.0,
            )
    return rows


def verdict(
    rows: dict[str, Row], slo_p95_ms: float | None, max_error_rate: float | None
) -> Verdict:
    """Judge the run against the SLO (p95 of ``/predict``, error rate of all requests)."""
    if slo_p95_ms is None and max_error_rate is None:
        return Verdict(True, False)
    result = Verdict(True, True)

    def judge(ok: bool, reason: str) -> None:
        result.passed &= ok
        result.reasons.append(reason)
        if not ok:
            result.broken.append(reason)

    if slo_p95_ms is not None:
        row = rows.get(SLO_ENDPOINT)
        if row is None or row.requests == 0 or row.p95_ms is None:
            judge(False, f"no {SLO_ENDPOINT} request completed")
        else:
            ok = row.p95_ms <= slo_p95_ms
            judge(
                ok, f"{SLO_ENDPOINT} p95 {row.p95_ms:g} ms {'<=' if ok else '>'} {slo_p95_ms:g} ms"
            )
    if max_error_rate is not None:
        total = rows.get(AGGREGATED)
        if total is None or total.requests == 0:
            judge(False, "no request completed")
        else:
            ok = total.failure_rate <= max_error_rate
            judge(
                ok,
                f"error rate {total.failure_rate:.2%} {'<=' if ok else '>'} {max_error_rate:.2%}",
            )
    return result


def table(rows: dict[str, Row]) -> str:
    """The per-task and aggregated numbers as a fixed-width table."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    lines = [["endpoint", "requests", "failures", "fail%", "p50 ms", "p95 ms", "p99 ms", "req/s"]]
    order = [*sorted(n for n in rows if n != AGGREGATED), AGGREGATED]
    for name in order:
        if name not in rows:
            continue
        row = rows[name]
        lines.append(
            [
                name,
                str(row.requests),
                str(row.failures),
                f"{row.failure_rate:.2%}",
                ms(row.p50_ms),
                ms(row.p95_ms),
                ms(row.p99_ms),
                f"{row.rps:.1f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def summary(
    rows: dict[str, Row], result: Verdict, settings: dict[str, Any], model: dict[str, Any] | None
) -> dict[str, Any]:
    """What ``summary.json`` holds."""
    return {
        "settings": settings,
        "model": model,
        "slo": {
            "endpoint": SLO_ENDPOINT,
            "p95_ms": settings.get("slo_p95_ms"),
            "max_error_rate": settings.get("max_error_rate"),
            "checked": result.checked,
            "passed": result.passed,
            "verdict": result.label,
        },
        "endpoints": {
            name: {**asdict(row), "failure_rate": row.failure_rate} for name, row in rows.items()
        },
    }


def write_summary(out_dir: Path, data: dict[str, Any]) -> Path:
    path = Path(out_dir) / "summary.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def version_tags(
    rows: dict[str, Row], result: Verdict, stamp: str, artifact_path: str
) -> dict[str, str]:
    """Tags for the served model version: its latest measured latency and verdict."""
    predict = rows.get(SLO_ENDPOINT)
    total = rows.get(AGGREGATED)
    tags = {"loadtest.at": stamp, "loadtest.slo": result.label, "loadtest.report": artifact_path}
    if predict is not None:
        tags.update(
            {
                "loadtest.p50_ms": f"{predict.p50_ms:g}" if predict.p50_ms else "n/a",
                "loadtest.p95_ms": f"{predict.p95_ms:g}" if predict.p95_ms else "n/a",
                "loadtest.p99_ms": f"{predict.p99_ms:g}" if predict.p99_ms else "n/a",
            }
        )
    if total is not None:
        tags.update(
            {"loadtest.rps": f"{total.rps:.1f}", "loadtest.error_rate": f"{total.failure_rate:.4f}"}
        )
    return tags


def attach(
    model: dict[str, Any] | None,
    out_dir: Path,
    tags: dict[str, str],
    artifact_path: str,
    tracking_uri: str | None,
) -> str:
    """Attach the report to the served version; returns a sentence saying what happened.

    Never raises: a report that cannot be attached is still on disk.
    """
    from opsline.tracking.runs import attach_to_model_version, client

    if not model or not model.get("version"):
        return (
            "Not attached to MLflow: the server's model is not a registered version "
            f"({(model or {}).get('uri', 'unknown model')})."
        )
    name, version = str(model["name"]), str(model["version"])
    try:
        registered = client(tracking_uri).get_model_version(name, version)
        if model.get("run_id") and registered.run_id != model["run_id"]:
            return (
                f"Not attached to MLflow: {name} version {version} in this tracking store "
                f"comes from run {registered.run_id}, the server's from {model['run_id']} "
                "(a different store?)."
            )
        run_id = attach_to_model_version(name, version, out_dir, artifact_path, tags, tracking_uri)
    except Exception as error:  # noqa: BLE001 - attaching is best effort, the files stay
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"Not attached to MLflow ({type(error).__name__}: {first})."
    return (
        f"Attached to {name} version {version}: tags loadtest.*, files in run "
        f"{run_id} under {artifact_path}/."
    )
