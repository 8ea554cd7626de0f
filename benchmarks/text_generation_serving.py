"""Serving throughput and latency of the text_generation recipe under concurrent clients.

Starts a real server (``opsline serve text_generation``, the workspace's ``@production``
model) as a subprocess, waits for ``/ready``, then, for each concurrency level ``c``, keeps
``c`` client threads busy with ``POST /predict`` until ``--requests`` requests have been
answered (closed loop: each client sends its next request when the previous one returns)::

    python benchmarks/text_generation_serving.py --home /path/to/.opsline \
        [--levels 1,2,4,8] [--requests 16] [--max-new-tokens 48] [--json]

Method:

* Fixed Shakespeare-style prompts (request ``i`` uses ``PROMPTS[i % 8]``), greedy decoding
  (``temperature=0``; ``--temperature T`` samples with ``seed=i`` instead), so every run asks
  for the same work. Greedy text is the same alone or batched (see the engine's docstring),
  so all levels generate the same tokens unless the model stops early on an end token.
* Per level: wall time from the first send to the last answer; requests/s; aggregate
  generated tokens/s = sum of the responses' ``tokens`` / wall; p50/p95 request latency
  (client side, whole HTTP round trip).
* Batching evidence: the server's ``opsline_generation_batch_rows`` histogram (rows decoded
  together per decoding step) is read from ``/metrics`` before and after each level; the
  difference gives that level's decode steps and mean rows per step (sum / count). With
  ``c`` clients it should approach ``c`` (less: each newcomer is prefilled alone before it
  joins, and the last requests of a level finish with fewer companions).
* Streaming: time to the first ``delta`` event of ``POST /predict/stream`` (client side,
  from sending the request), p50 over ``--requests`` streams at concurrency 1 and 4.
* Two untimed warm-up requests run first (first calls allocate and pick kernels).

The server runs with its defaults (engine batch 8 = ``OPSLINE_GENERATION_BATCH``, torch's
own thread count unless ``OPSLINE_GENERATION_THREADS`` is set in the environment) and is
killed at the end. Results: ``benchmarks/text_generation_serving.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROMPTS = [
    "ROMEO:\n",
    "JULIET:\n",
    "KING LEAR:\nBlow, winds, and crack your cheeks!",
    "HAMLET:\nTo be, or not to be,",
    "First Citizen:\nBefore we proceed any further, hear me speak.",
    "MACBETH:\nIs this a dagger which I see before me,",
    "PORTIA:\nThe quality of mercy is not strain'd,",
    "OTHELLO:\n",
]
ROWS = "opsline_generation_batch_rows"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, log_path: Path) -> subprocess.Popen:
    """``opsline serve text_generation`` with ``OPSLINE_HOME=home``, output to ``log_path``."""
    env = dict(os.environ, OPSLINE_HOME=str(home))
    opsline = Path(sys.executable).with_name("opsline")  # the venv's entry point
    cmd = [
        str(opsline) if opsline.exists() else "opsline",
        "serve",
        "text_generation",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
    # Own session: the server (and anything it spawns) is killed as one group at the end.
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(home.parent),
        start_new_session=True,
    )


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_ready(client: Any, proc: subprocess.Popen, log_path: Path, timeout: float) -> float:
    """Seconds until ``/ready`` answers 200; exits with the server log if it dies first."""
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if client.get("/ready", timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.TransportError:  # not listening yet
            pass
        time.sleep(0.5)
    sys.exit(f"server not ready after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def rows_histogram(client: Any) -> dict[str, float]:
    """``opsline_generation_batch_rows`` sum, count and cumulative buckets from /metrics."""
    text = client.get("/metrics").text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(ROWS):
            continue
        m = re.match(rf'{ROWS}_(sum|count|bucket)(?:\{{le="([^"]+)"\}})? (\S+)', line)
        if m:
            kind, le, value = m.groups()
            out[f"le={le}" if kind == "bucket" else kind] = float(value)
    return out


def body(i: int, args: argparse.Namespace) -> dict[str, Any]:
    b: dict[str, Any] = {
        "prompt": PROMPTS[i % len(PROMPTS)],
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
    }
    if args.temperature > 0:
        b["seed"] = i
    return b


def check(response: Any) -> None:
    """Fail with the server's explanation (e.g. a 422's field and reason)."""
    if response.status_code != 200:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def closed_loop(n: int, concurrency: int, work: Any) -> tuple[float, list[Any]]:
    """Run ``work(i)`` for i < n on ``concurrency`` threads; wall seconds and results."""
    counter = iter(range(n))
    lock = threading.Lock()
    results: list[Any] = [None] * n

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            results[i] = work(i)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(client) for _ in range(concurrency)]:
            f.result()  # re-raise a client's error
    return time.perf_counter() - start, results


def predict_level(client: Any, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    def one(i: int) -> tuple[float, dict[str, Any]]:
        t = time.perf_counter()
        r = client.post("/predict", json=body(i, args), timeout=600)
        check(r)
        return time.perf_counter() - t, r.json()

    before = rows_histogram(client)
    wall, results = closed_loop(args.requests, concurrency, one)
    after = rows_histogram(client)
    latencies = [lat for lat, _ in results]
    tokens = sum(resp["tokens"] for _, resp in results)
    steps = after.get("count", 0) - before.get("count", 0)
    rows = after.get("sum", 0) - before.get("sum", 0)
    half = f"le={float(concurrency // 2)}"  # buckets are 1, 2, 4, 8, ...
    full_share = None
    if concurrency > 1 and steps and half in after:
        full_share = 1 - (after[half] - before.get(half, 0)) / steps
    reasons: dict[str, int] = {}
    for _, resp in results:
        reasons[resp["finish_reason"]] = reasons.get(resp["finish_reason"], 0) + 1
    return {
        "concurrency": concurrency,
        "requests": args.requests,
        "wall_s": wall,
        "requests_per_s": args.requests / wall,
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "p50_ms": 1000 * pct(latencies, 0.5),
        "p95_ms": 1000 * pct(latencies, 0.95),
        "decode_steps": int(steps),
        "mean_rows_per_step": rows / steps if steps else float("nan"),
        "share_steps_over_half": full_share,
        "finish_reasons": reasons,
    }


def stream_level(client: Any, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    def one(i: int) -> tuple[float, float, int]:
        t = time.perf_counter()
        first, deltas, event = None, 0, None
        with client.stream("POST", "/predict/stream", json=body(i, args), timeout=600) as r:
            if r.status_code != 200:
                r.read()
                check(r)
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "delta":
                    deltas += 1
                    if first is None:
                        first = time.perf_counter() - t
                elif line.startswith("data:") and event == "error":
                    raise RuntimeError(f"stream error event: {line}")
        total = time.perf_counter() - t
        return (first if first is not None else total), total, deltas

    wall, results = closed_loop(args.requests, concurrency, one)
    firsts = [f for f, _, _ in results]
    return {
        "concurrency": concurrency,
        "requests": args.requests,
        "wall_s": wall,
        "ttfd_p50_ms": 1000 * statistics.median(firsts),
        "ttfd_p95_ms": 1000 * pct(firsts, 0.95),
        "total_p50_ms": 1000 * statistics.median([t for _, t, _ in results]),
        "deltas_mean": statistics.mean(d for _, _, d in results),
    }


def markdown(
    info: dict[str, Any], levels: list[dict[str, Any]], streams: list[dict[str, Any]]
) -> str:
    header = (
        "| concurrency | requests | wall (s) | req/s | gen tokens/s | p50 latency (ms) "
        "| p95 latency (ms) | decode steps | mean rows/step | steps with > c/2 rows |"
    )
    lines = [header, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in levels:
        share = "–" if r["share_steps_over_half"] is None else f"{r['share_steps_over_half']:.0%}"
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['wall_s']:.1f} "
            f"| {r['requests_per_s']:.2f} | {r['tokens_per_s']:.1f} "
            f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['decode_steps']} "
            f"| {r['mean_rows_per_step']:.2f} | {share} |"
        )
    header = (
        "| stream concurrency | streams | time to first delta p50 (ms) | p95 (ms) "
        "| whole stream p50 (ms) |"
    )
    lines += ["", header, "|---:|---:|---:|---:|---:|"]
    for s in streams:
        lines.append(
            f"| {s['concurrency']} | {s['requests']} | {s['ttfd_p50_ms']:.0f} "
            f"| {s['ttfd_p95_ms']:.0f} | {s['total_p50_ms']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        required=True,
        help="OPSLINE_HOME holding a promoted text_generation model",
    )
    parser.add_argument("--levels", default="1,2,4,8", help="concurrency levels, comma-separated")
    parser.add_argument("--stream-levels", default="1,4")
    parser.add_argument("--requests", type=int, default=16, help="requests per level")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0 = greedy; > 0 samples with seed = request index",
    )
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    args = parser.parse_args()

    import httpx

    home = args.home.resolve()
    if not home.is_dir():
        sys.exit(f"--home {home} is not a directory")
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="opsline-serve-", suffix=".log")[1])
    proc = start_server(home, port, log_path)
    try:
        # Enough pooled connections for the largest level; no keep-alive surprises.
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
            ready_s = wait_ready(client, proc, log_path, args.ready_timeout)
            model = client.get("/model").json()
            for i in range(2):
                check(client.post("/predict", json=body(i, args), timeout=600))
            levels = [predict_level(client, int(c), args) for c in args.levels.split(",")]
            streams = [stream_level(client, int(c), args) for c in args.stream_levels.split(",")]
    finally:
        stop_server(proc)

    import torch  # only to report the machine

    info = {
        "home": str(home),
        "ready_s": round(ready_s, 1),
        "cpus": os.cpu_count(),
        "torch_threads_default": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "model": model,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "server_log": str(log_path),
    }
    print(
        f"server ready in {ready_s:.1f} s; model: "
        f"{json.dumps({k: model.get(k) for k in ('name', 'version', 'alias')})}; "
        f"cpus={os.cpu_count()}; load average after: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"max_new_tokens={args.max_new_tokens} temperature={args.temperature} "
        f"requests/level={args.requests}; finish reasons: "
        + "; ".join(f"c={r['concurrency']} {r['finish_reasons']}" for r in levels)
    )
    print()
    print(markdown(info, levels, streams))
    if args.json:
        print(
            json.dumps({"info": info, "predict": levels, "stream": streams}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
