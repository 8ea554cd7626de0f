"""Image serving: grapevine ``POST /predict`` images/s at c=1/4/8 next to offline batched ONNX
Runtime on the same core, in one reproducible run::

    python benchmarks/serving_image.py [--home DIR] [--duration 10] [--concurrency 1,4,8]
        [--wait-for /tmp/quiet-flag --wait-timeout 2700]

Method (``benchmarks/serving_image.md`` holds the results and the reading):

* Workspace: ``--home`` (an ``OPSLINE_HOME``) or a temporary one. Without a
  ``models:/grapevine@production`` the script runs ``opsline run image_classification
  data=grapevine data.path=DIR`` (``--data``; the test images, never copied into the repo).
* Offline (the denominator): ``benchmarks/image_onnx.py:offline_batched_images_per_second``
  on the served model directory, batches of 4 and 8 copies of the request image, in a child
  process pinned to the server's CPU (``taskset -c 0``) with the server's ONNX Runtime threads
  (``OPSLINE_ORT_THREADS``, default 1) and the model's own TTA setting. Measured before and
  after the server (the VM's speed drifts); the child also times what the server does per
  request that the offline number skips: validating the JSON body (base64 + PNG decode).
* Server: ``opsline serve image_classification data=grapevine`` pinned to CPU 0,
  ``OPSLINE_UI=false``, ``OPSLINE_RELOAD_INTERVAL_S=0``, ``OPSLINE_BACKEND=auto`` (ONNX
  Runtime when the parity gate passed: ``/model`` is checked and recorded); everything else
  default. One checked request, a ``--warmup`` at c=4, then wrk (one thread, pinned to CPU 1,
  ``--duration`` s per point) posting ``{"image": <base64 PNG>}`` — one real grapevine leaf —
  at each concurrency. images/s = req/s; rows per model call from ``opsline_batch_rows``;
  the cores the server and other processes used during each point from ``/proc``.
* Target (issue): c=4 images/s >= 85 % of offline batched ONNX Runtime (batch 4).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _serving import cli, report, workload, wrk
from _serving.servers import Servers, free_port, http, post_json

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(
    os.environ.get("OPSLINE_GRAPEVINE_DIR") or ROOT.parent / "shared" / "data" / "grapevine-leaves"
)
TARGET_RATIO = 0.85
SYSTEM = "opsline-image"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--home", type=Path, help="OPSLINE_HOME to use/reuse (default: a temp dir)")
    p.add_argument("--duration", type=float, default=10, help="seconds per point (10)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds at c=4 (3)")
    p.add_argument("--concurrency", default="1,4,8", help="connections for /predict")
    p.add_argument("--offline-batches", default="1,4,8", help="offline ONNX Runtime batches")
    p.add_argument("--data", type=Path, default=DATA, help=f"grapevine folder ({DATA})")
    p.add_argument("--image", type=Path, help="the PNG to post (default: DATA/Ak/Ak (1).png)")
    cli.add_common_args(p, ROOT / "benchmarks" / "serving_image.md")
    args = p.parse_args(argv)
    args.concurrency = cli.ints(args.concurrency)
    args.offline_batches = cli.ints(args.offline_batches)
    args.image = args.image or args.data / "Ak" / "Ak (1).png"
    return args


def venv_bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def ensure_model(home: Path, data: Path, say) -> Path:
    """The grapevine production model directory; trains one first if there is none."""
    from opsline.errors import OpslineError
    from opsline.tracking.registry import resolve_model

    for attempt in range(2):
        try:
            ref = resolve_model("image_classification", "models:/grapevine@production", None)
            say(f"Production model: grapevine v{ref.version} ({ref.kind}) in {ref.local_dir}")
            return Path(ref.local_dir)
        except OpslineError as error:
            why = str(error).split(".")[0]
        if attempt:
            raise SystemExit(f"No grapevine production model in {home}: {why}.")
        say(f"{why}: running `opsline run image_classification data=grapevine` (1-3 min) ...")
        subprocess.run(
            [
                venv_bin("opsline"),
                "run",
                "image_classification",
                "data=grapevine",
                f"data.path={data}",
            ],
            check=True,
            env={**os.environ, "OPSLINE_HOME": str(home)},
        )
    raise AssertionError("unreachable")


_OFFLINE = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
from pathlib import Path
from image_onnx import offline_batched_images_per_second
png = Path({image!r}).read_bytes()
out = {{"batches": {{}}}}
for batch in {batches!r}:
    out["batches"][batch] = offline_batched_images_per_second(Path({model_dir!r}), batch,
                                                              {seconds!r}, images=[png])
# What the server does per request that the offline number skips: parse + validate the
# JSON body (base64 + PNG decode happen during validation).
from opsline.recipes.image_classification.schemas import ImageRequest
body = Path({body!r}).read_bytes()
ImageRequest.model_validate_json(body)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < 2:
    ImageRequest.model_validate_json(body)
    n += 1
out["validate_ms"] = (time.perf_counter() - start) / n * 1000
print("RESULT " + json.dumps(out))
"""


def offline(args, model_dir: Path, body_path: Path, env: dict, say) -> dict:
    """Offline ONNX Runtime images/s per batch (+ body validation ms), pinned like the server."""
    code = _OFFLINE.format(
        bench=str(ROOT / "benchmarks"),
        image=str(args.image),
        batches=args.offline_batches,
        model_dir=str(model_dir),
        seconds=args.duration,
        body=str(body_path),
    )
    cmd = ["taskset", "-c", args.server_cpu, sys.executable, "-c", code]
    proc = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False, timeout=600
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(
            f"offline measurement failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    out = json.loads(line[len("RESULT ") :])
    out["batches"] = {int(k): v for k, v in out["batches"].items()}
    say(
        "  offline ONNX Runtime: "
        + ", ".join(f"batch {b} {v:.2f} img/s" for b, v in out["batches"].items())
        + f"; validating one request body {out['validate_ms']:.1f} ms"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.check_wrk()

    def say(msg: str) -> None:
        print(msg, flush=True)

    if not args.image.is_file():
        raise SystemExit(f"No image at {args.image} (set --data or --image).")
    started = time.time()
    home = (args.home or Path(tempfile.mkdtemp(prefix="opsline-serving-image-"))).resolve()
    os.environ["OPSLINE_HOME"] = str(home)
    model_dir = ensure_model(home, args.data, say)
    preprocessing = json.loads((model_dir / "preprocessing.json").read_text())
    png = args.image.read_bytes()
    body = {"image": base64.b64encode(png).decode("ascii")}
    workdir = Path(tempfile.mkdtemp(prefix="serving-image-"))
    body_path = workdir / "body.json"
    body_path.write_text(json.dumps(body))
    lua = wrk.write_lua(workdir, "image", body_path.read_bytes())
    ort_threads = os.environ.get("OPSLINE_ORT_THREADS", "1")
    env = {"OPSLINE_HOME": str(home), "OPSLINE_ORT_THREADS": ort_threads}
    say(f"Server logs and wrk scripts in {workdir}")

    wait = (
        workload.wait_until_quiet(args.wait_for, args.wait_timeout, say) if args.wait_for else None
    )
    machine = report.machine_state()
    servers = Servers(workdir)
    points: list[dict] = []
    checks: dict = {}
    offline_runs: list[dict] = []
    try:
        cli.stop_like_ctrl_c()
        say(f"Offline ONNX Runtime on CPU {args.server_cpu} (before the server) ...")
        offline_runs.append(offline(args, model_dir, body_path, env, say))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [
            venv_bin("opsline"),
            "serve",
            "image_classification",
            "data=grapevine",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        server_env = {
            **env,
            "OPSLINE_BACKEND": "auto",
            "OPSLINE_UI": "false",
            "OPSLINE_RELOAD_INTERVAL_S": "0",
        }
        say(f"Starting {SYSTEM}: {shlex.join(cmd)}")
        t0 = time.monotonic()
        proc = servers.start(SYSTEM, cmd, server_env, base + "/ready", cpu=args.server_cpu)
        checks["ready_s"] = round(time.monotonic() - t0, 1)
        try:
            checks["model"] = json.loads(http("GET", f"{base}/model")[1])
            predictor = checks["model"].get("predictor", checks["model"])
            say(
                f"  ready in {checks['ready_s']} s; backend {predictor.get('backend')}: "
                f"{predictor.get('backend_reason')}"
            )
            checks["answer"] = post_json(base + "/predict", body)
            if args.warmup > 0:
                wrk.run(base + "/predict", lua, 4, args.warmup, cpu=args.client_cpu)
            for c in args.concurrency:
                point = workload.measure_point(
                    SYSTEM,
                    base + "/predict",
                    lua,
                    c,
                    args.duration,
                    args.client_cpu,
                    proc.pid,
                    base,
                )
                points.append(point)
                say(
                    f"  c={c:<2} {point['rps']:6.2f} images/s  p50 {point['p50_ms']:8.1f} ms  "
                    f"p99 {point['p99_ms']:8.1f} ms  rows/call "
                    f"{point['rows_per_model_call'] or 0:.2f}  server {point['server_cpu']:.2f} "
                    f"cores, others {point['other_cpu']:.2f}  non-2xx {point['non_2xx']}"
                )
                time.sleep(0.5)
        finally:
            servers.stop(SYSTEM)
        say("Offline ONNX Runtime again (after the server) ...")
        offline_runs.append(offline(args, model_dir, body_path, env, say))
    except KeyboardInterrupt:
        say("Interrupted: stopping the server.")
        return 130
    finally:
        servers.stop_all()

    result = {
        "started": started,
        "elapsed_s": time.time() - started,
        "machine": machine,
        "machine_after": report.machine_state(),
        "args": vars(args),
        "wait": wait,
        "command": shlex.join(
            [os.path.relpath(sys.executable), os.path.relpath(sys.argv[0]), *sys.argv[1:]]
        ),
        "model_dir": str(model_dir),
        "preprocessing": preprocessing,
        "image": {
            "path": str(args.image),
            "bytes": len(png),
            "body_bytes": body_path.stat().st_size,
        },
        "ort_threads": ort_threads,
        "offline": offline_runs,
        "checks": checks,
        "points": points,
    }
    text = render(result)
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if str(args.out) != "-":
        report.write(args.out, text)
        say(f"Wrote {args.out}")
    return 0


def offline_mean(result: dict, batch: int) -> float | None:
    values = [run["batches"].get(batch) for run in result["offline"]]
    values = [v for v in values if v]
    return sum(values) / len(values) if values else None


def render(result: dict) -> str:
    from _serving.report import _contention, _f, _machine, points_table

    args, points = result["args"], result["points"]
    predictor = result["checks"].get("model", {})
    predictor = predictor.get("predictor", predictor)
    tta = result["preprocessing"].get("tta", "none")
    by_c = {p["concurrency"]: p for p in points}
    batches = args["offline_batches"]
    lines = [
        *report.header(
            "Image serving: grapevine `/predict` vs offline batched ONNX Runtime (one core)",
            "benchmarks/serving_image.py",
            result,
        ),
        "## Method",
        "",
        (
            f"Model: the workspace's `models:/grapevine@production` (`{result['model_dir']}`): "
            f"{predictor.get('kind', '?')}, {result['preprocessing'].get('image_size')} px, "
            f"**TTA {tta}**, served by **{predictor.get('backend', '?')}** "
            f"({predictor.get('backend_reason', '')}) with `max_batch_size` "
            f"{predictor.get('max_batch_size', '?')} images per model call; "
            f"`OPSLINE_ORT_THREADS={result['ort_threads']}`."
        ),
        "",
        (
            f"* **Server**: `opsline serve image_classification data=grapevine` pinned to **CPU "
            f"{args['server_cpu']}** (`taskset`), `OPSLINE_UI=false`, "
            "`OPSLINE_RELOAD_INTERVAL_S=0`, `OPSLINE_BACKEND=auto`, every other setting its "
            "default (batcher 2 ms delay). After one checked request and a "
            f"{args['warmup']:g} s warm-up at c=4, `wrk` pinned to **CPU {args['client_cpu']}** "
            f"(`taskset -c {args['client_cpu']} wrk -t1 -cN -d{args['duration']:g}s --latency`), "
            f'closed loop, posting `{{"image": <base64>}}` of one real leaf '
            f"(`{Path(result['image']['path']).name}`, {result['image']['bytes']:,} B PNG, "
            f"511x511 RGBA; body {result['image']['body_bytes']:,} B). images/s = req/s."
        ),
        (
            f"* **Offline**: `benchmarks/image_onnx.py:offline_batched_images_per_second(model_dir,"
            f" batch, {args['duration']:g})` — `predictor.predict` on already-validated requests"
            f" (resize, normalise, {8 if tta == 'dihedral' else 1} view(s) per image through ONNX "
            "Runtime, softmax, responses), full batches back to back, no HTTP/JSON/base64/PNG "
            f"decoding — in a child process pinned to CPU {args['server_cpu']} with the same ORT "
            "threads, on the same PNG. Run before and after the server; the ratio uses their mean."
        ),
        "",
        "## Machine",
        "",
        _machine(result["machine"], result["machine_after"]),
        "- " + workload.quiet_note(result.get("wait")),
        "",
        "## Results",
        "",
        (
            "| | images/s | p50 ms | p99 ms | rows per model call (mean; spread) | server cores "
            "| other processes (cores) | non-2xx / socket errors |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, p in by_c.items():
        lines.append(
            f"| `/predict` c={c} | {_f(p['rps'], 2)} | {_f(p['p50_ms'], 0)} | "
            f"{_f(p['p99_ms'], 0)} | {_f(p['rows_per_model_call'], 2)} "
            f"({p.get('rows_per_call_spread', '-')}) | "
            f"{_f(p['server_cpu'], 2)} | {_f(p['other_cpu'], 2)} | "
            f"{p['non_2xx']} / {p['socket_errors']} |"
        )
    for b in batches:
        runs = " / ".join(_f(r["batches"].get(b), 2) for r in result["offline"])
        lines.append(
            f"| offline ORT batch {b} (before / after) | {runs} "
            f"(mean {_f(offline_mean(result, b), 2)}) | | | {b} | 1 (pinned) | | |"
        )
    lines += ["", _contention(points), ""]
    validate = [r.get("validate_ms") for r in result["offline"] if r.get("validate_ms")]
    if validate:
        lines += [
            (
                f"Validating one request body in-process (JSON parse, base64, PNG decode; "
                f"what the server does per request before the model and the offline number "
                f"skips): {' / '.join(_f(v, 1) for v in validate)} ms (before / after)."
            ),
            "",
        ]
    lines += [
        "Server images/s relative to offline ONNX Runtime (mean of before/after):",
        "",
        "| | " + " | ".join(f"vs offline batch {b}" for b in batches) + " |",
        "|---|" + "---:|" * len(batches),
    ]
    for c, p in by_c.items():
        cells = []
        for b in batches:
            ref = offline_mean(result, b)
            cells.append(f"{p['rps'] / ref:.0%}" if ref else "-")
        lines.append(f"| c={c} | " + " | ".join(cells) + " |")
    lines += ["", "## Target", "", "| target | measured | |", "|---|---|---|"]
    ref4, p4 = offline_mean(result, 4), by_c.get(4)
    if ref4 and p4:
        ratio = p4["rps"] / ref4
        contended = (p4["other_cpu"] or 0) > 0.1 or not (result.get("wait") or {}).get(
            "quiet", True
        )
        lines.append(
            f"| `/predict` c=4 images/s >= {TARGET_RATIO:.0%} of offline batched "
            f"ONNX Runtime (batch 4), same core | {ratio:.1%} ({_f(p4['rps'], 2)} vs "
            f"{_f(ref4, 2)} images/s) | {'pass' if ratio >= TARGET_RATIO else 'MISS'}"
            f"{' (contended)' if contended else ''} |"
        )
    lines += [
        "",
        "## Every point",
        "",
        points_table(points),
        "",
        "## Answers checked before the load",
        "",
        f"- `/model`: `{json.dumps(predictor)[:600]}`",
        (
            f"- `/predict` ({Path(result['image']['path']).name}): "
            f"`{json.dumps(result['checks'].get('answer'))}`"
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
