"""A bounded soak of ``opsline serve house_price``: measure the peak, then hold a fixed
share of it for minutes, watching errors, latency over time, memory and the prediction log::

    python benchmarks/soak.py [--home DIR] [--minutes 10] [--fraction 0.8] [--connections N]

Method (``benchmarks/soak.md`` holds the results and the reading):

* One ``opsline serve house_price`` (the workspace's production GBM, ``OPSLINE_BACKEND``
  onnx) pinned to CPU 0; its defaults but ``OPSLINE_UI=false``, ``OPSLINE_RETRAIN_POLICY=off``
  (a retrain job would train on the server's core in the middle of the soak) and a fresh
  SQLite prediction log in the run's scratch directory. Drift checks stay on (every 60 s,
  as served by default); before the clock starts one ``GET /drift?refresh=true`` runs the
  first check, so Evidently's import is not counted as growth.
* ``wrk`` pinned to CPU 1. **Peak**: a short closed-loop ramp (``--ramp`` connections,
  ``--ramp-seconds`` each, as ``serving_tabular.py`` measures); the peak is the best req/s.
* **Soak**: ``--fraction`` of the peak, held ``--minutes`` minutes as one wrk run per minute
  with a paced script (``benchmarks/_serving/paced.py``): one schedule of fixed rate shared
  by the connections, sends that fall behind go out at once. wrk2 (which does this natively)
  is not packaged here; an asyncio/httpx client on one core tops out below the rate the
  server sustains, and Locust's constant throughput is per user and Python-bound as well,
  so wrk stays the client and only its pacing is added. ``--connections`` (default: enough
  for 25 ms of the schedule in flight) bounds what can be in flight; sends more than 5 ms
  behind their slot are counted per minute (a stall that outlasts the connections would
  hide its wait from wrk's latency: coordinated omission).
* ``--warmup-minutes`` (1) at the soak's rate come first: connections open, caches and the
  allocator's arenas fill, the drift window fills with soak traffic. They are in the table
  and in the error and log checks, not in the growth.
* Per minute: answered req/s, p50/p99 (wrk), non-2xx and socket errors, late sends, other
  processes' CPU and the load average. The server's RSS (psutil, the server process and
  any children) every ``--sample-seconds``; growth = mean of the last minute over the mean
  of the first measured minute (target < 5 %). Afterwards the log must hold at least
  one row per answered request of the soak.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _serving import cli, paced, preamble, report, wrk
from _serving.servers import Servers, cpu_snapshot, free_port, http, other_cpu, post_json
from _serving.soak_report import render
from serving_tabular import ensure_model, venv_bin

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS_IN_FLIGHT_S = 0.025  # default connections = rate x 25 ms of schedule


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--home", type=Path, help="OPSLINE_HOME to use/reuse (default: a temp dir)")
    p.add_argument("--minutes", type=int, default=10, help="soak length in minutes (10)")
    p.add_argument("--fraction", type=float, default=0.8, help="share of the peak to hold (0.8)")
    p.add_argument(
        "--warmup-minutes",
        type=int,
        default=1,
        help="minutes at the soak's rate before the measured ones (1; reported, not in growth)",
    )
    p.add_argument("--connections", type=int, help="wrk connections in the soak (auto)")
    p.add_argument("--ramp", default="8,32,64", help="peak ramp connections (8,32,64)")
    p.add_argument("--ramp-seconds", type=float, default=8, help="seconds per ramp point (8)")
    p.add_argument("--sample-seconds", type=float, default=5, help="RSS sampling period (5)")
    p.add_argument("--backend", default="onnx", choices=["onnx", "native"])
    cli.add_common_args(p, ROOT / "benchmarks" / "soak.md", wait=False)
    args = p.parse_args(argv)
    args.ramp = cli.ints(args.ramp)
    if args.minutes < 2:
        p.error("--minutes must be at least 2 (growth compares the first and the last minute)")
    if not 0 < args.fraction <= 1:
        p.error("--fraction must be in (0, 1]")
    return args


def bodies() -> list[bytes]:
    """Sixteen houses: the recipe's three samples with their living area varied, so the log
    and the drift window hold different rows."""
    from opsline.recipes.house_price import sample_requests

    out = []
    for k in range(16):
        house = sample_requests()[k % 3].model_dump(exclude_none=True)
        house["gr_liv_area"] = int(house["gr_liv_area"]) + 25 * k
        out.append(json.dumps(house).encode())
    return out


class RssSampler(threading.Thread):
    """RSS of the server process (and its children) every ``period`` seconds."""

    def __init__(self, pid: int, period: float):
        super().__init__(daemon=True, name="rss-sampler")
        import psutil

        self.process = psutil.Process(pid)
        self.period = period
        self.samples: list[tuple[float, int]] = []  # (monotonic, bytes)
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs)
            except psutil.Error:
                return
            self.samples.append((time.monotonic(), rss))
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=self.period + 5)


def logged_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM predictions").fetchone()[0]


def start_server(run: preamble.Run, servers: Servers, args: argparse.Namespace, db: Path) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [venv_bin("opsline"), "serve", "house_price", "--host", "127.0.0.1", "--port", str(port)]
    env = {
        "OPSLINE_HOME": str(run.home),
        "OPSLINE_BACKEND": args.backend,
        "OPSLINE_UI": "false",
        "OPSLINE_RETRAIN_POLICY": "off",
        "OPSLINE_PREDICTION_LOG_URI": f"sqlite:///{db}",
    }
    run.say(f"Starting {' '.join(cmd)} on CPU {args.server_cpu}")
    servers.start("soak", cmd, env, base + "/ready", cpu=args.server_cpu)
    return base


def soak(args, run, base, lua, connections, sampler, server_group) -> list[dict]:
    """One paced wrk run per minute; per-minute results."""
    minutes = []
    for minute in range(-args.warmup_minutes, args.minutes):
        cpu_before, t0 = cpu_snapshot(), time.monotonic()
        result = wrk.run(base + "/predict", lua, connections, 60, cpu=args.client_cpu)
        t1 = time.monotonic()
        rss = [b for t, b in sampler.samples if t0 <= t <= t1]
        point = {
            "minute": minute + 1,
            "warmup": minute < 0,
            **result.as_dict(),
            **paced.schedule_stats(result.raw),
            "rss_mean_mb": statistics.fmean(rss) / 2**20 if rss else None,
            "rss_max_mb": max(rss) / 2**20 if rss else None,
            "other_cpu": other_cpu(cpu_before, cpu_snapshot(), t1 - t0, {server_group}),
            "loadavg": os.getloadavg(),
        }
        minutes.append(point)
        run.say(
            f"  {'warm-up' if minute < 0 else 'minute'} {minute + 1:>2}: "
            f"{result.rps:7.0f} req/s  p50 {result.p50_ms:5.2f} ms  "
            f"p99 {result.p99_ms:6.2f} ms  errors {result.non_2xx + result.socket_errors}  "
            f"late {point['late']}  RSS {point['rss_mean_mb'] or 0:.1f} MB  "
            f"others {point['other_cpu']:.2f} cores  load {point['loadavg'][0]:.2f}"
        )
    return minutes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = preamble.begin(args.home, "soak")
    ensure_model(run.home, run.say)
    db = run.workdir / "predictions.db"
    servers = Servers(run.workdir)
    cli.stop_like_ctrl_c()
    try:
        base = start_server(run, servers, args, db)
        server_group = servers.procs["soak"].pid
        closed = wrk.write_lua(run.workdir, "peak", bodies()[0])
        post_json(base + "/predict", json.loads(bodies()[0]))
        wrk.run(base + "/predict", closed, 8, 3, cpu=args.client_cpu)  # warm-up
        status, _ = http("GET", base + "/drift?refresh=true", timeout=120)
        run.say(f"First drift check answered {status}; measuring the peak ...")
        ramp = []
        for c in args.ramp:
            result = wrk.run(base + "/predict", closed, c, args.ramp_seconds, cpu=args.client_cpu)
            ramp.append(result.as_dict())
            run.say(f"  c={c:<3} {result.rps:8.0f} req/s  p99 {result.p99_ms:6.2f} ms")
        peak = max(r["rps"] for r in ramp)
        rate = args.fraction * peak
        connections = args.connections or max(8, round(rate * CONNECTIONS_IN_FLIGHT_S))
        lua = paced.write_paced_lua(run.workdir, "soak", bodies(), rate)
        run.say(
            f"Peak {peak:.0f} req/s: holding {rate:.0f} req/s ({args.fraction:.0%}) "
            f"for {args.minutes} min over {connections} connections"
        )
        sampler = RssSampler(server_group, args.sample_seconds)
        rows_before = logged_rows(db)
        sampler.start()
        minutes = soak(args, run, base, lua, connections, sampler, server_group)
        sampler.stop()
        time.sleep(1)  # the last batches' commits
        rows = logged_rows(db) - rows_before
        alive = http("GET", base + "/ready")[0] == 200
    except KeyboardInterrupt:
        run.say("Interrupted: stopping the server.")
        return 130
    finally:
        servers.stop_all()
    t_start = sampler.samples[0][0] if sampler.samples else 0.0
    result = {
        "started": run.started,
        "elapsed_s": time.time() - run.started,
        "machine": run.machine,
        "machine_after": report.machine_state(),
        "args": vars(args),
        "command": preamble.command_line(),
        "ramp": ramp,
        "peak_rps": peak,
        "target_rps": rate,
        "connections": connections,
        "minutes": minutes,
        "rss": [(round(t - t_start, 2), b) for t, b in sampler.samples],
        "logged_rows": rows,
        "answered_2xx": sum(m["requests"] - m["non_2xx"] for m in minutes),
        "ready_after": alive,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if str(args.out) != "-":
        report.write(args.out, render(result, __doc__))
        run.say(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
