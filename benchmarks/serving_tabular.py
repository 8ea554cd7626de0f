"""Tabular serving: opsline's /predict next to a hand-written FastAPI + ONNX Runtime endpoint
and ``mlflow models serve``, for the house_price LightGBM, in one reproducible run::

    python benchmarks/serving_tabular.py [--home DIR] [--duration 10] \
        [--only opsline,bare,mlflow] [--concurrency 1,8,32] [--batch-concurrency 1,4]

Method (``benchmarks/serving_tabular.md`` holds the results and the reading):

* Workspace: ``--home`` (an ``OPSLINE_HOME``) or a temporary one. Without a LightGBM
  ``models:/house_price@production`` the script runs ``opsline run house_price model=gbm``.
* Servers, one at a time, each pinned to CPU 0 (``taskset -c 0``), each started fresh:
  ``opsline serve house_price`` with ``OPSLINE_BACKEND=onnx`` and ``=native`` (two rows;
  ``OPSLINE_UI=false``, ``OPSLINE_RELOAD_INTERVAL_S=0``, the prediction log in the run's
  scratch directory, every other setting default; what the log costs is measured by
  ``prediction_log_cost.py``); the
  anchor ``benchmarks/_serving/bare_fastapi.py`` (same schemas, same compiled feature plan,
  same ``model.onnx``); ``mlflow models serve --env-manager local --workers 1`` of a sklearn
  Pipeline + LGBMRegressor (``benchmarks/_serving/mlflow_model.py``).
* Load: ``wrk`` pinned to CPU 1, one thread, N keep-alive connections (closed loop: each
  connection sends its next request when the previous one is answered), ``--duration``
  seconds per point after a warm-up of ``--warmup`` seconds at c=8; req/s and p50/p99 from
  ``--latency``; non-2xx responses and socket errors counted. One-row body: the typical Ames
  house (``schemas.TYPICAL_HOUSE``); MLflow gets the same house with every raw column spelled
  out (its signature requires them; the values are the ones opsline imputes). Batches: 256
  rows (the three sample houses, cycled) on ``/predict/batch`` (``dataframe_records`` for
  MLflow); rows/s = req/s x 256.
* Before the load each server answers one request, so the table only compares servers that
  give the same price (opsline and the anchor must agree to the cent).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _serving import cli, report, wrk
from _serving.servers import Servers, cpu_snapshot, free_port, http, other_cpu, post_json

ROOT = Path(__file__).resolve().parent.parent
BATCH_ROWS = 256
SYSTEMS = ("opsline", "bare", "mlflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--home", type=Path, help="OPSLINE_HOME to use/reuse (default: a temp dir)")
    p.add_argument("--duration", type=float, default=10, help="seconds per point (10)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds per server (3)")
    p.add_argument("--only", default=",".join(SYSTEMS), help="opsline,bare,mlflow")
    p.add_argument("--backends", default="onnx,native", help="opsline backends (onnx,native)")
    p.add_argument("--concurrency", default="1,8,32", help="connections for /predict")
    p.add_argument("--batch-concurrency", default="1,4", help="connections for /predict/batch")
    cli.add_common_args(p, ROOT / "benchmarks" / "serving_tabular.md", wait=False)
    args = p.parse_args(argv)
    args.only = cli.names(args.only)
    unknown = set(args.only) - set(SYSTEMS)
    if unknown:
        p.error(f"--only: unknown {sorted(unknown)}; use {','.join(SYSTEMS)}")
    args.backends = cli.names(args.backends)
    args.concurrency = cli.ints(args.concurrency)
    args.batch_concurrency = cli.ints(args.batch_concurrency)
    return args


def venv_bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def ensure_model(home: Path, say) -> Path:
    """The production model directory; trains the GBM first if there is none (or not a GBM)."""
    from opsline.errors import OpslineError
    from opsline.tracking.registry import resolve_model

    for attempt in range(2):
        try:
            ref = resolve_model("house_price", "models:/house_price@production", None)
            if ref.kind == "gbm":
                say(f"Production model: house_price v{ref.version} (gbm) in {ref.local_dir}")
                return Path(ref.local_dir)
            why = f"production is a {ref.kind}, not the GBM"
        except OpslineError as error:
            why = str(error).split(".")[0]
        if attempt:
            raise SystemExit(f"No LightGBM production model in {home}: {why}.")
        say(f"{why}: running `opsline run house_price model=gbm` (about a minute) ...")
        subprocess.run(
            [venv_bin("opsline"), "run", "house_price", "model=gbm"], check=True, env={**_env(home)}
        )
    raise AssertionError("unreachable")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "OPSLINE_HOME": str(home)}


def bodies(model_dir: Path) -> dict[str, dict]:
    from _serving.mlflow_model import full_record

    from opsline.recipes.house_price import sample_requests
    from opsline.recipes.house_price.features import Preprocessor
    from opsline.recipes.house_price.schemas import TYPICAL_HOUSE

    samples = [r.model_dump(mode="json", exclude_none=True) for r in sample_requests()]
    rows = [samples[i % len(samples)] for i in range(BATCH_ROWS)]
    defaults = Preprocessor.load(model_dir).defaults
    return {
        "one": dict(TYPICAL_HOUSE),
        "batch": {"items": rows},
        "mlflow_one": {"dataframe_records": [full_record(defaults, TYPICAL_HOUSE)]},
        "mlflow_batch": {"dataframe_records": [full_record(defaults, r) for r in rows]},
    }


def _batch_rows_metric(base: str) -> tuple[float, float]:
    """(sum, count) of opsline_batch_rows from /metrics (rows per model call)."""
    _, text = http("GET", f"{base}/metrics")
    total = count = 0.0
    for line in text.decode().splitlines():
        if line.startswith("opsline_batch_rows_sum"):
            total = float(line.split()[-1])
        elif line.startswith("opsline_batch_rows_count"):
            count = float(line.split()[-1])
    return total, count


def measure(
    name: str,
    url: str,
    lua: Path,
    concurrencies: list[int],
    args,
    rows: int,
    base: str | None,
    say,
    groups: set[int],
) -> list[dict]:
    """wrk at each concurrency; ``groups``: process groups that are the server (not "other")."""
    points = []
    for c in concurrencies:
        before = _batch_rows_metric(base) if base else None
        cpu_before, t0 = cpu_snapshot(), time.monotonic()
        result = wrk.run(url, lua, c, args.duration, cpu=args.client_cpu)
        others = other_cpu(cpu_before, cpu_snapshot(), time.monotonic() - t0, groups)
        point = {
            "system": name,
            "route": url.split("/", 3)[-1],
            "rows": rows,
            **result.as_dict(),
            "rows_per_s": result.rps * rows,
            "other_cpu": others,
        }
        if before is not None:
            after = _batch_rows_metric(base)
            calls = after[1] - before[1]
            point["rows_per_model_call"] = (after[0] - before[0]) / calls if calls else None
        points.append(point)
        say(
            f"  {name:<15} /{point['route']:<14} c={c:<3} {result.rps:9.1f} req/s  "
            f"p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms  "
            f"non-2xx {result.non_2xx}  socket errors {result.socket_errors}  "
            f"other processes {others:.2f} cores"
            + (
                f"  rows/call {point['rows_per_model_call']:.1f}"
                if point.get("rows_per_model_call")
                else ""
            )
        )
        time.sleep(0.5)
    return points


def run_system(
    servers: Servers,
    name: str,
    cmd: list[str],
    env: dict,
    base: str,
    ready: str,
    routes: list[tuple[str, dict, list[int], int]],
    args,
    workdir: Path,
    say,
    checks: dict,
    metrics_base: str | None = None,
) -> list[dict]:
    say(f"Starting {name}: {shlex.join(cmd)}")
    t0 = time.monotonic()
    proc = servers.start(name, cmd, env, base + ready, cpu=args.server_cpu)
    say(f"  ready in {time.monotonic() - t0:.1f} s")
    try:
        if metrics_base:
            checks[f"{name} /model"] = json.loads(http("GET", f"{base}/model")[1])["predictor"]
        points = []
        for i, (route, body, concurrencies, rows) in enumerate(routes):
            answer = post_json(base + route, body)
            got = answer.get("items") or answer.get("predictions") or [answer]
            if len(got) != rows:
                raise RuntimeError(f"{name} {route} answered {len(got)} rows for {rows}")
            checks[f"{name} {route} ({rows} rows)"] = answer if rows == 1 else f"{rows} answers"
            lua = wrk.write_lua(workdir, f"{name}-{i}", json.dumps(body).encode())
            if i == 0 and args.warmup > 0:
                wrk.run(base + route, lua, 8, args.warmup, cpu=args.client_cpu)
            points += measure(
                name, base + route, lua, concurrencies, args, rows, metrics_base, say, {proc.pid}
            )
        return points
    finally:
        servers.stop(name)


def prices(checks: dict) -> dict[str, float]:
    """Each server's price for the one-row house (MLflow answers a log price)."""
    import math

    out = {}
    for key, answer in checks.items():
        if not key.endswith("(1 rows)") or not isinstance(answer, dict):
            continue
        name = key.split()[0]
        out[name] = (
            answer["predicted_price"]
            if "predicted_price" in answer
            else round(math.exp(answer["predictions"][0]), 2)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.check_wrk()

    def say(msg: str) -> None:
        print(msg, flush=True)

    started = time.time()
    machine = report.machine_state()
    home = args.home or Path(tempfile.mkdtemp(prefix="opsline-serving-bench-"))
    home = home.resolve()
    os.environ["OPSLINE_HOME"] = str(home)
    model_dir = ensure_model(home, say)
    body = bodies(model_dir)
    workdir = Path(tempfile.mkdtemp(prefix="serving-tabular-"))
    servers = Servers(workdir)
    say(f"Server logs and wrk scripts in {workdir}")
    points: list[dict] = []
    checks: dict = {}
    failures: dict[str, str] = {}
    mlflow_info = None
    try:
        if "mlflow" in args.only:
            from _serving import mlflow_model

            mlflow_info = mlflow_model.build(home, model_dir, body["one"], say=say)
        cli.stop_like_ctrl_c()
        plan = []
        if "opsline" in args.only:
            for backend in args.backends:
                port = free_port()
                plan.append(
                    (
                        f"opsline-{backend}",
                        [
                            venv_bin("opsline"),
                            "serve",
                            "house_price",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                        ],
                        {
                            "OPSLINE_HOME": str(home),
                            "OPSLINE_BACKEND": backend,
                            "OPSLINE_UI": "false",
                            "OPSLINE_RELOAD_INTERVAL_S": "0",
                            # A fresh log per server, in this run's scratch directory.
                            "OPSLINE_PREDICTION_LOG_URI": (
                                f"sqlite:///{workdir / f'predictions-{backend}.db'}"
                            ),
                        },
                        port,
                        "/ready",
                        [
                            ("/predict", body["one"], args.concurrency, 1),
                            ("/predict/batch", body["batch"], args.batch_concurrency, BATCH_ROWS),
                        ],
                        True,
                    )
                )
        if "bare" in args.only:
            port = free_port()
            plan.append(
                (
                    "bare-fastapi-ort",
                    [
                        sys.executable,
                        str(ROOT / "benchmarks/_serving/bare_fastapi.py"),
                        "--model-dir",
                        str(model_dir),
                        "--port",
                        str(port),
                    ],
                    {},
                    port,
                    "/health",
                    [("/predict", body["one"], args.concurrency, 1)],
                    False,
                )
            )
        if "mlflow" in args.only:
            port = free_port()
            plan.append(
                (
                    "mlflow-serve",
                    [
                        venv_bin("mlflow"),
                        "models",
                        "serve",
                        "-m",
                        mlflow_info["uri"],
                        "--env-manager",
                        "local",
                        "--workers",
                        "1",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                    ],
                    # It execs `uvicorn` by name: the venv's bin must be on PATH.
                    {
                        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                        "MLFLOW_TRACKING_URI": mlflow_info["tracking_uri"],
                        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                    },
                    port,
                    "/ping",
                    [
                        ("/invocations", body["mlflow_one"], args.concurrency, 1),
                        ("/invocations", body["mlflow_batch"], args.batch_concurrency, BATCH_ROWS),
                    ],
                    False,
                )
            )
        for name, cmd, env, port, ready, routes, is_opsline in plan:
            base = f"http://127.0.0.1:{port}"
            try:
                points += run_system(
                    servers,
                    name,
                    cmd,
                    env,
                    base,
                    ready,
                    routes,
                    args,
                    workdir,
                    say,
                    checks,
                    base if is_opsline else None,
                )
            except (RuntimeError, OSError) as error:  # one broken server is a row, not a crash
                failures[name] = str(error)
                say(f"  {name} FAILED: {error}")
    except KeyboardInterrupt:
        say("Interrupted: stopping the servers.")
        return 130
    finally:
        servers.stop_all()

    result = {
        "prices": prices(checks),
        "started": started,
        "elapsed_s": time.time() - started,
        "machine": machine,
        "machine_after": report.machine_state(),
        "args": vars(args),
        "command": shlex.join(
            [os.path.relpath(sys.executable), os.path.relpath(sys.argv[0]), *sys.argv[1:]]
        ),
        "model_dir": str(model_dir),
        "mlflow": mlflow_info,
        "checks": checks,
        "failures": failures,
        "points": points,
    }
    text = report.render(result)
    print("\n" + report.summary_table(points))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if str(args.out) != "-":
        report.write(args.out, text)
        say(f"Wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
