"""Machine description, tables, ratios/targets and the markdown report of serving_tabular.py."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import math
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

NOTES_BEGIN = "<!-- notes:begin (hand-written; kept when the script rewrites this file) -->"
NOTES_END = "<!-- notes:end -->"
PACKAGES = (
    "fastapi",
    "uvicorn",
    "pydantic",
    "onnxruntime",
    "lightgbm",
    "scikit-learn",
    "mlflow",
    "numpy",
)
ANCHOR, MLFLOW = "bare-fastapi-ort", "mlflow-serve"
# The targets of the serving-speed issue (opsline rows; "same run" for the ratios).
TARGET_VS_ANCHOR, TARGET_VS_MLFLOW = 0.90, 20.0
TARGET_P99_MS = {32: 15.0, 8: 5.0}
TARGET_BATCH_ROWS_S = 20_000


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_state() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    others = [
        line
        for line in _run("pgrep", "-fa", "pytest").splitlines()
        if str(os.getpid()) not in line.split()[:1]
    ]
    root = Path(__file__).resolve().parents[2]
    return {
        "time": dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "wrk": _run("wrk", "--version").splitlines()[0] if _run("wrk", "--version") else "",
        "loadavg": os.getloadavg(),
        "pytest_processes": len(others),
        "git": _run("git", "-C", str(root), "log", "-1", "--format=%h %s")[:100],
        "git_dirty": bool(
            _run("git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "src")
        ),
    }


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _point(points: list[dict], system: str, route_rows: int, c: int) -> dict | None:
    return next(
        (
            p
            for p in points
            if p["system"] == system and p["rows"] == route_rows and p["concurrency"] == c
        ),
        None,
    )


def _systems(points: list[dict]) -> list[str]:
    return list(dict.fromkeys(p["system"] for p in points))


def summary_table(points: list[dict]) -> str:
    """One row per system: req/s per concurrency, p50/p99 at each, errors (one-row route)."""
    one = [p for p in points if p["rows"] == 1]
    levels = sorted({p["concurrency"] for p in one})
    head = (
        ["system"]
        + [f"c={c} req/s" for c in levels]
        + [f"c={c} p50 / p99 ms" for c in levels]
        + ["non-2xx / socket errors"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system in _systems(one):
        row = [system]
        cells = [_point(one, system, 1, c) for c in levels]
        row += [_f(p["rps"], 0) if p else "-" for p in cells]
        row += [f"{_f(p['p50_ms'], 2)} / {_f(p['p99_ms'], 2)}" if p else "-" for p in cells]
        row.append(
            f"{sum(p['non_2xx'] for p in cells if p)} / "
            f"{sum(p['socket_errors'] for p in cells if p)}"
        )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def points_table(points: list[dict]) -> str:
    head = [
        "system",
        "route",
        "rows/request",
        "c",
        "req/s",
        "rows/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "requests",
        "non-2xx",
        "socket errors",
        "rows per model call",
        "other processes (cores)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in points:
        lines.append(
            "| "
            + " | ".join(
                [
                    p["system"],
                    f"/{p['route']}",
                    str(p["rows"]),
                    str(p["concurrency"]),
                    _f(p["rps"]),
                    _f(p["rows_per_s"], 0),
                    _f(p["p50_ms"], 2),
                    _f(p["p90_ms"], 2),
                    _f(p["p99_ms"], 2),
                    f"{p['requests']:,}",
                    str(p["non_2xx"]),
                    str(p["socket_errors"]),
                    _f(p.get("rows_per_model_call")),
                    _f(p.get("other_cpu"), 2),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def targets(points: list[dict]) -> list[tuple[str, str, bool | None]]:
    """(what, measured, passed) per opsline row and target; None = not measured."""
    out: list[tuple[str, str, bool | None]] = []
    top = max((p["concurrency"] for p in points if p["rows"] == 1), default=None)
    anchor = _point(points, ANCHOR, 1, top) if top else None
    mlflow = _point(points, MLFLOW, 1, top) if top else None
    for system in [s for s in _systems(points) if s.startswith("opsline")]:
        mine = _point(points, system, 1, top) if top else None
        if mine is None:
            continue
        if anchor:
            ratio = mine["rps"] / anchor["rps"]
            out.append(
                (
                    f"{system} c={top} req/s vs the anchor (>= 90 %)",
                    f"{ratio:.1%} ({_f(mine['rps'], 0)} vs {_f(anchor['rps'], 0)})",
                    ratio >= TARGET_VS_ANCHOR,
                )
            )
        if mlflow:
            ratio = mine["rps"] / mlflow["rps"]
            out.append(
                (
                    f"{system} c={top} req/s vs mlflow (>= 20x)",
                    f"{ratio:.1f}x ({_f(mine['rps'], 0)} vs {_f(mlflow['rps'], 0)})",
                    ratio >= TARGET_VS_MLFLOW,
                )
            )
        for c, limit in TARGET_P99_MS.items():
            p = _point(points, system, 1, c)
            if p:
                out.append(
                    (
                        f"{system} p99 at c={c} (<= {limit:g} ms)",
                        f"{_f(p['p99_ms'], 2)} ms",
                        p["p99_ms"] <= limit,
                    )
                )
        for p in points:
            if p["system"] == system and p["rows"] > 1:
                out.append(
                    (
                        (
                            f"{system} /predict/batch {p['rows']} rows c={p['concurrency']} "
                            f"(>= {TARGET_BATCH_ROWS_S:,} rows/s)"
                        ),
                        f"{_f(p['rows_per_s'], 0)} rows/s",
                        p["rows_per_s"] >= TARGET_BATCH_ROWS_S,
                    )
                )
        errors = sum(p["non_2xx"] + p["socket_errors"] for p in points if p["system"] == system)
        out.append((f"{system} errors (non-2xx + socket)", str(errors), errors == 0))
    return out


def ratios(points: list[dict]) -> str:
    """Every system's one-row req/s relative to the anchor and to mlflow, per concurrency."""
    one = [p for p in points if p["rows"] == 1]
    levels = sorted({p["concurrency"] for p in one})
    head = ["system"] + [f"c={c} vs anchor" for c in levels] + [f"c={c} vs mlflow" for c in levels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for system in _systems(one):
        row = [system]
        for ref, fmt in ((ANCHOR, "{:.0%}"), (MLFLOW, "{:.1f}x")):
            for c in levels:
                mine, base = _point(one, system, 1, c), _point(one, ref, 1, c)
                row.append(
                    fmt.format(mine["rps"] / base["rps"]) if mine and base and base["rps"] else "-"
                )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _contention(points: list[dict]) -> str:
    """How much CPU other processes (not the server, not wrk) took during the points."""
    loads = [(p.get("other_cpu") or 0.0, p) for p in points]
    if not loads:
        return ""
    busy = [
        f"{p['system']} /{p['route']} c={p['concurrency']} ({load:.2f})"
        for load, p in loads
        if load > 0.1
    ]
    worst = max(load for load, _ in loads)
    if not busy:
        return (
            f"Other processes used at most {worst:.2f} cores during any point: the two "
            "cores were the server's and wrk's."
        )
    return (
        f"**Contended**: other processes (tests, other benchmarks) used more than 0.1 "
        f"core during {len(busy)} of {len(loads)} points (cores in parentheses): "
        + ", ".join(busy)
        + ". Those points understate the server they measure."
    )


def _machine(m: dict, after: dict) -> str:
    v = m["versions"]
    busy = (
        "quiet: no pytest process was running at the start or the end"
        if not m["pytest_processes"] and not after["pytest_processes"]
        else f"BUSY: {m['pytest_processes']} pytest processes at the start, "
        f"{after['pytest_processes']} at the end (other engineers' tests share the cores)"
    )
    return "\n".join(
        [
            (
                f"- {m['cpu'] or 'unknown CPU'}, {m['cores']} cores, Linux {m['kernel']}, "
                f"Python {m['python']}, {m['wrk']}"
            ),
            "- " + ", ".join(f"{k} {val}" for k, val in v.items()),
            f"- opsline at `{m['git']}`"
            + (" plus uncommitted changes in src/" if m["git_dirty"] else ""),
            (
                f"- load average at the start {m['loadavg'][0]:.2f} / {m['loadavg'][1]:.2f} (1 / 5 "
                f"min), at the end {after['loadavg'][0]:.2f} / {after['loadavg'][1]:.2f}; {busy}"
            ),
        ]
    )


def header(title: str, script: str, result: dict) -> list[str]:
    """A report's title, when and how long, and the command that made it."""
    return [
        f"# {title}",
        "",
        (
            f"Generated by `{script}` on {result['machine']['time']} "
            f"({result['elapsed_s'] / 60:.1f} min). Command:"
        ),
        "",
        "```bash",
        result["command"],
        "```",
        "",
    ]


def render(result: dict) -> str:
    args = result["args"]
    verdicts = targets(result["points"])
    lines = [
        *header(
            "Tabular serving: opsline next to a hand-written FastAPI + ONNX Runtime "
            "endpoint and `mlflow models serve`",
            "benchmarks/serving_tabular.py",
            result,
        ),
        "## Method",
        "",
        (
            "House price (Ames) LightGBM, the workspace's `models:/house_price@production` "
            f"(model directory `{result['model_dir']}`)."
        ),
        "",
        (
            "* Each server runs alone, pinned to **CPU 0** (`taskset -c 0`), started fresh, after "
            "a readiness probe and one checked request; `wrk` runs pinned to **CPU 1** "
            f"(`taskset -c 1 wrk -t1 -cN -d{args['duration']:g}s --latency -s post.lua URL`), "
            f"{args['duration']:g} s per point after a {args['warmup']:g} s warm-up at c=8. "
            "Closed loop: N keep-alive connections, each sends its next request when the "
            "previous one is answered; latency is wrk's (send to last byte)."
        ),
        (
            "* **opsline**: `opsline serve house_price` with `OPSLINE_BACKEND=onnx` or `native`, "
            "`OPSLINE_UI=false`, `OPSLINE_RELOAD_INTERVAL_S=0`, every other setting its default "
            "(batcher max 256 rows / 10 ms delay, metrics middleware, Prometheus, history sampler, "
            "prediction log in SQLite with group commit, drift check every 60 s, retrain loop). "
            "What the log costs: `prediction_log_cost.py`. "
            "`rows per model call` is read from its `opsline_batch_rows` histogram."
        ),
        (
            "* **bare-fastapi-ort** (the anchor, `benchmarks/_serving/bare_fastapi.py`): ~60 lines "
            "of FastAPI, one `def` endpoint, the same pydantic request/response schemas, the same "
            "compiled numpy feature plan (`opsline.recipes.house_price.plan.FeaturePlan`) and the "
            "same `model.onnx` through ONNX Runtime (1 thread). No batching, metrics or registry."
        ),
        "* **mlflow-serve**: `mlflow models serve -m <uri> --env-manager local --workers 1` "
        "(`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`) of a scikit-learn Pipeline — "
        "ColumnTransformer (median imputation of the numbers, `NA` + OrdinalEncoder for the "
        "quality words, `NA` + OneHotEncoder for the other categories, over the same "
        "`RAW_COLUMNS`) + `LGBMRegressor` on log price with opsline's GBM parameters and the "
        "same number of trees"
        + (
            f" ({result['mlflow']['trees']}; its test RMSLE {result['mlflow']['test_rmsle']:.4f})"
            if result.get("mlflow")
            else ""
        )
        + ", logged with `mlflow.sklearn.log_model` (skops, LightGBM types trusted). Body: "
        '`{"dataframe_records": [row]}` with every raw column (its signature requires them).',
        (
            "* One row: the typical Ames house (`schemas.TYPICAL_HOUSE`; for MLflow the same "
            "house, the fields opsline imputes written out). Batches: 256 rows (the three "
            "sample houses cycled) on `/predict/batch` (MLflow: 256 `dataframe_records`); "
            "rows/s = req/s x 256. uvicorn defaults everywhere (one worker, access log on)."
        ),
        "",
        "## Machine",
        "",
        _machine(result["machine"], result["machine_after"]),
        "",
        "## POST one row",
        "",
        summary_table(result["points"]),
        "",
        _contention(result["points"]),
        "",
        "Throughput relative to the anchor and to MLflow (same run):",
        "",
        ratios(result["points"]),
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[
            f"| {what} | {measured} | {'pass' if ok else 'MISS' if ok is False else '-'} |"
            for what, measured, ok in verdicts
        ],
        "",
        "## Every point",
        "",
        points_table(result["points"]),
        "",
    ]
    if result["failures"]:
        lines += ["## Servers that failed", ""]
        lines += [
            f"- **{name}**: {why.splitlines()[0]}" for name, why in result["failures"].items()
        ]
        lines.append("")
    lines += ["## Answers checked before the load", ""]
    prices = result.get("prices", {})
    if prices:
        notes = []
        anchor = prices.get(ANCHOR)
        for name, price in prices.items():
            if name in (ANCHOR, MLFLOW) or anchor is None:
                continue
            if name.endswith("onnx"):  # the same model.onnx and plan: the same cents
                notes.append(
                    f"{name} = the anchor to the cent"
                    if price == anchor
                    else f"**{name} DISAGREES with the anchor** (the comparison is off)"
                )
            else:  # LightGBM in float64 vs ONNX's float32 output: the parity tolerance
                rel = abs(price - anchor) / anchor
                notes.append(
                    f"{name} within {rel:.1e} relative of it (LightGBM itself vs "
                    f"the ONNX graph; parity tolerance 1e-4)"
                    if rel <= 1e-4
                    else f"**{name} is {rel:.1e} off the anchor**"
                )
        if MLFLOW in prices:
            notes.append("MLflow's is its own scikit-learn/LightGBM fit of the same train split")
        lines += [
            "Price of the typical house: "
            + ", ".join(f"{name} ${price:,.2f}" for name, price in prices.items())
            + ". "
            + "; ".join(notes)
            + ".",
            "",
        ]
    for key, answer in result["checks"].items():
        lines.append(f"- {key}: `{answer}`")
    lines.append("")
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Write the report, keeping the hand-written notes section of the previous file."""
    notes = (
        f"## Reading\n\n{NOTES_BEGIN}\n(Write the reading of these numbers here.)\n{NOTES_END}\n"
    )
    if path.is_file():
        m = re.search(
            re.escape(NOTES_BEGIN) + r".*?" + re.escape(NOTES_END), path.read_text(), re.DOTALL
        )
        if m:
            notes = f"## Reading\n\n{m.group(0)}\n"
    path.write_text(text + "\n" + notes)
