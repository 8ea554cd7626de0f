"""Translation serving: Danish -> English ``POST /predict`` sentences/s at c=1 and c=8, int8 and
float32, next to the same predictor called offline at batch 1 and 8 on the same core::

    python benchmarks/serving_translation.py [--model-dir /tmp/int8-bench-model]
        [--duration 10] [--backends auto,native] [--concurrency 1,8] [--bodies cycle,one]
        [--wait-for /tmp/quiet-flag --wait-timeout 2700]

Method (``benchmarks/serving_translation.md`` holds the results and the reading):

* Model: ``--model-dir`` (default ``/tmp/int8-bench-model``, the directory
  ``benchmarks/translation_int8.py`` trains: the default Marian architecture, **400 AdamW
  steps only**, with its int8 gate record). Missing, it is made by running
  ``benchmarks/translation_int8.py --model-dir DIR`` (~6 min of one core).
* Sentences: the first ``--sentences`` distinct 10-word Danish sentences of the test split
  (``translation_int8.ten_word_sentences``). ``--bodies cycle``: wrk posts them in turn (a
  Lua ``request()`` cycling through the bodies), so concurrent requests carry different
  sentences; ``one``: the first sentence on every request (every row of a batch decodes
  the same number of steps — the best case for batching).
* Server: ``OPSLINE_RECIPE=translation OPSLINE_MODEL_URI=<dir> opsline serve translation
  --model <dir>`` (the CLI's ``--model`` overrides the variable, even when not given)
  pinned to CPU 0, ``OPSLINE_BACKEND=auto`` (int8 when the gate passed) or ``native``
  (float32), ``OPSLINE_UI=false``, ``OPSLINE_RELOAD_INTERVAL_S=0``, every other setting
  default (one torch thread). ``/model`` is recorded; each sentence is posted once to record
  its translation (output words and tokens); then ``--warmup`` s at c=8 and wrk (one
  thread, pinned to CPU 1, ``--duration`` s per point). sentences/s = req/s; rows per model
  call from ``opsline_batch_rows``; cores of the server and of everyone else from ``/proc``.
* Offline (the ceiling): the same ``TranslationPredictor.predict`` in a child pinned to the
  server's core, same backend, on the same sentences at batch 1, 4 and 8 (and as many copies
  of the one sentence): no HTTP, no queueing, full batches.
* Target (issue): sentences/s at c=8 >= 3x c=1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _serving import cli, report, workload, wrk
from _serving.servers import Servers, free_port, http, post_json

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path("/tmp/int8-bench-model")
TARGET_SPEEDUP = 3.0
BODIES = ("cycle", "one")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=DEFAULT_MODEL,
        help=f"translation model directory ({DEFAULT_MODEL}); trained if missing",
    )
    p.add_argument(
        "--home",
        type=Path,
        help="OPSLINE_HOME for the server (default: a temp "
        "dir; the model is served from its directory)",
    )
    p.add_argument("--duration", type=float, default=10, help="seconds per point (10)")
    p.add_argument("--warmup", type=float, default=3, help="warm-up seconds at c=8 (3)")
    p.add_argument("--backends", default="auto,native", help="OPSLINE_BACKEND values")
    p.add_argument("--concurrency", default="1,8", help="connections for /predict")
    p.add_argument(
        "--bodies",
        default="cycle,one",
        help="cycle (the sentences in turn), one (the first sentence only)",
    )
    p.add_argument("--sentences", type=int, default=32, help="10-word sentences to cycle (32)")
    p.add_argument(
        "--offline-seconds",
        type=float,
        default=None,
        help="seconds per offline measurement (default: --duration / 2)",
    )
    cli.add_common_args(p, ROOT / "benchmarks" / "serving_translation.md")
    args = p.parse_args(argv)
    args.backends = cli.names(args.backends)
    args.concurrency = cli.ints(args.concurrency)
    args.bodies = cli.names(args.bodies)
    if set(args.bodies) - set(BODIES):
        p.error(f"--bodies: use {','.join(BODIES)}")
    if args.offline_seconds is None:
        args.offline_seconds = args.duration / 2
    return args


def ensure_model(model_dir: Path, say) -> None:
    if (model_dir / "model.safetensors").is_file() and (model_dir / "parity.json").is_file():
        return
    say(
        f"No trained model in {model_dir}: running benchmarks/translation_int8.py "
        f"--model-dir {model_dir} (~6 min of one core) ..."
    )
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "translation_int8.py"),
            "--model-dir",
            str(model_dir),
            "--rounds",
            "1",
            "--repeats",
            "2",
        ],
        check=True,
    )


def sentences(n: int) -> list[str]:
    """The first ``n`` distinct 10-word Danish test sentences (as translation_int8 picks)."""
    from translation_int8 import load_cfg, ten_word_sentences

    from opsline.recipes.translation.cleaning import prepare

    return ten_word_sentences(prepare(load_cfg()), n)


_OFFLINE = r"""
import json, os, sys, time
os.environ["OPSLINE_TRANSLATION_THREADS"] = "1"
from opsline.recipes.translation.predictor import TranslationPredictor
from opsline.recipes.translation.schemas import TranslationRequest
predictor = TranslationPredictor.load({model_dir!r}, backend={backend!r})
texts = {texts!r}
one = [TranslationRequest(text=texts[0])] * 8
cycle = [TranslationRequest(text=t) for t in texts]

def rate(batches, seconds):
    predictor.predict(batches[0])  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for b in batches:
            predictor.predict(b)
            done += len(b)
    return done / (time.perf_counter() - start)

out = {{"backend": predictor.backend,
       "cycle_batch_1": rate([[r] for r in cycle], {seconds!r}),
       "cycle_batch_4": rate([cycle[i:i + 4] for i in range(0, len(cycle), 4)], {seconds!r}),
       "cycle_batch_8": rate([cycle[i:i + 8] for i in range(0, len(cycle), 8)], {seconds!r}),
       "one_batch_1": rate([one[:1]], {seconds!r}),
       "one_batch_4": rate([one[:4]], {seconds!r}),
       "one_batch_8": rate([one], {seconds!r})}}
print("RESULT " + json.dumps(out))
"""


def offline(args, backend: str, texts: list[str], say) -> dict:
    code = _OFFLINE.format(
        model_dir=str(args.model_dir), backend=backend, texts=texts, seconds=args.offline_seconds
    )
    cmd = ["taskset", "-c", args.server_cpu, sys.executable, "-W", "ignore", "-c", code]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(
            f"offline measurement failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    out = json.loads(line[len("RESULT ") :])
    say(
        f"  offline {out['backend']}: "
        + ", ".join(f"{k} {v:.1f} sent/s" for k, v in out.items() if k != "backend")
    )
    return out


def output_lengths(base: str, texts: list[str], tokenizer) -> list[dict]:
    """Each sentence posted once (c=1): its translation, words and target tokens."""
    out = []
    for text in texts:
        answer = post_json(base + "/predict", {"text": text})
        translation = answer["translation"]
        out.append(
            {
                "text": text,
                "translation": translation,
                "words": len(translation.split()),
                "tokens": len(tokenizer(translation)["input_ids"]),
            }
        )
    return out


def run_backend(
    servers: Servers,
    backend: str,
    args,
    home: Path,
    workdir: Path,
    texts: list[str],
    tokenizer,
    say,
) -> tuple[list[dict], dict]:
    name = f"opsline-{backend}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # `opsline serve` passes its own --model (None) to the settings, which beats
    # OPSLINE_MODEL_URI: without --model it looks for models:/translation@production.
    cmd = [
        venv_bin("opsline"),
        "serve",
        "translation",
        "--model",
        str(args.model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        "OPSLINE_HOME": str(home),
        "OPSLINE_RECIPE": "translation",
        "OPSLINE_MODEL_URI": str(args.model_dir),
        "OPSLINE_BACKEND": backend,
        "OPSLINE_UI": "false",
        "OPSLINE_RELOAD_INTERVAL_S": "0",
    }
    say(f"Starting {name}: {' '.join(f'{k}={v}' for k, v in env.items())} {shlex.join(cmd)}")
    t0 = time.monotonic()
    proc = servers.start(name, cmd, env, base + "/ready", cpu=args.server_cpu)
    info: dict = {"ready_s": round(time.monotonic() - t0, 1)}
    points = []
    try:
        model = json.loads(http("GET", f"{base}/model")[1])
        info["model"] = model.get("predictor", model)
        say(
            f"  ready in {info['ready_s']} s; backend {info['model'].get('backend')}: "
            f"{info['model'].get('backend_reason')}"
        )
        info["outputs"] = output_lengths(base, texts, tokenizer)
        bodies = [json.dumps({"text": t}, ensure_ascii=False).encode() for t in texts]
        luas = {
            "cycle": workload.write_cycling_lua(
                workdir, f"{name}-cycle", bodies, "benchmarks/serving_translation.py"
            ),
            "one": wrk.write_lua(workdir, f"{name}-one", bodies[0]),
        }
        if args.warmup > 0:
            wrk.run(base + "/predict", luas[args.bodies[0]], 8, args.warmup, cpu=args.client_cpu)
        for mode in args.bodies:
            for c in args.concurrency:
                point = workload.measure_point(
                    f"{name} ({mode})",
                    base + "/predict",
                    luas[mode],
                    c,
                    args.duration,
                    args.client_cpu,
                    proc.pid,
                    base,
                    backend=backend,
                    bodies=mode,
                )
                points.append(point)
                say(
                    f"  {mode:<5} c={c:<2} {point['rps']:6.2f} sentences/s  p50 "
                    f"{point['p50_ms']:7.1f} ms  p99 {point['p99_ms']:7.1f} ms  rows/call "
                    f"{point['rows_per_model_call'] or 0:.2f}  server "
                    f"{point['server_cpu']:.2f} cores, others {point['other_cpu']:.2f}  "
                    f"non-2xx {point['non_2xx']}"
                )
                time.sleep(0.5)
    finally:
        servers.stop(name)
    return points, info


def venv_bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.check_wrk()

    def say(msg: str) -> None:
        print(msg, flush=True)

    started = time.time()
    args.model_dir = args.model_dir.resolve()
    ensure_model(args.model_dir, say)
    home = (args.home or Path(tempfile.mkdtemp(prefix="opsline-serving-translation-"))).resolve()
    texts = sentences(args.sentences)
    from opsline.recipes.translation.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(args.model_dir)
    workdir = Path(tempfile.mkdtemp(prefix="serving-translation-"))
    say(f"Server logs and wrk scripts in {workdir}")
    wait = (
        workload.wait_until_quiet(args.wait_for, args.wait_timeout, say) if args.wait_for else None
    )
    machine = report.machine_state()
    servers = Servers(workdir)
    points: list[dict] = []
    infos: dict[str, dict] = {}
    offline_runs: dict[str, dict] = {}
    failures: dict[str, str] = {}
    try:
        cli.stop_like_ctrl_c()
        for backend in args.backends:
            try:
                got, infos[backend] = run_backend(
                    servers, backend, args, home, workdir, texts, tokenizer, say
                )
                points += got
                say(f"Offline predictor ({backend}) on CPU {args.server_cpu} ...")
                offline_runs[backend] = offline(args, backend, texts, say)
            except (RuntimeError, OSError) as error:
                failures[backend] = str(error)
                say(f"  {backend} FAILED: {error}")
    except KeyboardInterrupt:
        say("Interrupted: stopping the servers.")
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
        "model_card": json.loads((args.model_dir / "opsline_model.json").read_text()),
        "sentences": texts,
        "servers": infos,
        "offline": offline_runs,
        "failures": failures,
        "points": points,
    }
    text = render(result)
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str, ensure_ascii=False) + "\n")
    if str(args.out) != "-":
        report.write(args.out, text)
        say(f"Wrote {args.out}")
    return 1 if failures else 0


def _lengths(outputs: list[dict], mode: str) -> dict:
    rows = outputs[:1] if mode == "one" else outputs
    tokens = [o["tokens"] for o in rows]
    batches = [max(tokens[i : i + 8]) for i in range(0, len(tokens), 8)]
    return {
        "words": statistics.mean(o["words"] for o in rows),
        "tokens": statistics.mean(tokens),
        "max_tokens": max(tokens),
        "batch8_steps": statistics.mean(batches),
    }


def render(result: dict) -> str:
    from _serving.report import _contention, _f, _machine, points_table

    args, points = result["args"], result["points"]
    card = result["model_card"]
    lines = [
        *report.header(
            "Translation serving: sentences/s at c=1 and c=8, int8 and float32 (one core)",
            "benchmarks/serving_translation.py",
            result,
        ),
        "## Method",
        "",
        (
            f"Model: `{args['model_dir']}` — {card.get('architecture', {}).get('summary', '?')}, "
            f"{card.get('tokenizer', {}).get('vocab_size', '?')}-token BPE, **short-trained** "
            f"({card.get('training', {}).get('steps', '?')} AdamW steps, "
            f"{card.get('training', {}).get('cpu_seconds', '?')} CPU-s; see "
            "`benchmarks/translation_int8.md`). Its speed per decoding step is the default "
            "architecture's, but it has not learnt to stop: some translations loop to many more "
            "tokens than a trained model's ~10-12, and a greedy batch decodes until its longest "
            "row ends. Output lengths are listed below; read every number with them."
        ),
        "",
        (
            f"* **Server**: `OPSLINE_RECIPE=translation OPSLINE_MODEL_URI={args['model_dir']} "
            f"opsline serve translation --model {args['model_dir']}` (the CLI's `--model`, even "
            "absent, overrides `OPSLINE_MODEL_URI`) pinned to **CPU {args['server_cpu']}**, "
            "`OPSLINE_BACKEND=auto` (int8: the gate passed) or `native` (float32), "
            "`OPSLINE_UI=false`, `OPSLINE_RELOAD_INTERVAL_S=0`, every other setting its default "
            "(one torch thread, batcher 2 ms delay, predictor `max_batch_size` 32, greedy, "
            "`max_new_tokens` 64). `wrk` pinned to **CPU "
            f"{args['client_cpu']}** (`-t1 -cN -d{args['duration']:g}s --latency`), closed "
            f"loop, after a {args['warmup']:g} s warm-up at c=8."
        ),
        (
            f'* **Bodies**: `{{"text": ...}}` with the first {len(result["sentences"])} distinct '
            "10-word Danish sentences of the test split. *cycle*: a Lua `request()` posts them in "
            "turn, so the 8 concurrent requests carry 8 different sentences; *one*: the first "
            "sentence every time (all rows of a batch end together)."
        ),
        (
            f"* **Offline**: `TranslationPredictor.predict` in a child pinned to CPU "
            f"{args['server_cpu']}, same backend, {args['offline_seconds']:g} s per cell: the "
            "cycled sentences one per call (batch 1) or eight per call (batch 8), and the one "
            "sentence alone or eight copies of it. No HTTP, no queueing: the ceiling."
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
            "| backend | bodies | c=1 sentences/s | c=8 sentences/s | c=8 / c=1 | c=1 p50 / p99 ms "
            "| c=8 p50 / p99 ms | rows per model call (c=1 / c=8) | server cores (c=1 / c=8) "
            "| offline batch 1 / 4 / 8 sentences/s | output words / tokens per sentence "
            "(mean; max tokens) |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for backend in args["backends"]:
        info = result["servers"].get(backend)
        if not info:
            continue
        shown = info["model"].get("backend", backend)
        for mode in args["bodies"]:
            pts = {
                p["concurrency"]: p
                for p in points
                if p.get("backend") == backend and p.get("bodies") == mode
            }
            p1, p8 = pts.get(1), pts.get(8)
            if not (p1 and p8):
                continue
            speedup = p8["rps"] / p1["rps"] if p1["rps"] else float("nan")
            off = result["offline"].get(backend, {})
            ln = _lengths(info["outputs"], mode)
            lines.append(
                f"| {shown} | {mode} | {_f(p1['rps'], 2)} | {_f(p8['rps'], 2)} | "
                f"**{speedup:.2f}x** | {_f(p1['p50_ms'], 0)} / {_f(p1['p99_ms'], 0)} | "
                f"{_f(p8['p50_ms'], 0)} / {_f(p8['p99_ms'], 0)} | "
                f"{_f(p1['rows_per_model_call'], 2)} / {_f(p8['rows_per_model_call'], 2)} | "
                f"{_f(p1['server_cpu'], 2)} / {_f(p8['server_cpu'], 2)} | "
                f"{_f(off.get(f'{mode}_batch_1'), 1)} / {_f(off.get(f'{mode}_batch_4'), 1)} / "
                f"{_f(off.get(f'{mode}_batch_8'), 1)} | "
                f"{ln['words']:.1f} / {ln['tokens']:.1f} ({ln['max_tokens']}) |"
            )
            contended = max(p1["other_cpu"] or 0, p8["other_cpu"] or 0) > 0.1 or not (
                result.get("wait") or {}
            ).get("quiet", True)
            verdicts.append(
                (
                    (f"{shown}, {mode} bodies: c=8 sentences/s >= {TARGET_SPEEDUP:g}x c=1"),
                    f"{speedup:.2f}x ({_f(p8['rps'], 2)} vs {_f(p1['rps'], 2)})",
                    speedup >= TARGET_SPEEDUP,
                    contended,
                )
            )
    lines += [
        "",
        (
            "Model calls by rows per call (`opsline_batch_rows` buckets 1, 2, 4, 8 …; "
            "the mean above cannot tell a 4 + 4 split from 1 + 7):"
        ),
        "",
    ]
    lines += [
        f"- {p['system']} c={p['concurrency']}: {p.get('rows_per_call_spread', '-')} "
        f"of {_f(p.get('model_calls'), 0)} calls"
        for p in points
    ]
    lines += [
        "",
        _contention(points),
        "",
        (
            "Offline ceiling of the c=8 / c=1 ratio = offline batch 8 / batch 1 (same "
            "sentences, same core): "
            + "; ".join(
                f"{result['servers'][b]['model'].get('backend', b)} {mode} "
                f"{o[f'{mode}_batch_8'] / o[f'{mode}_batch_1']:.2f}x"
                for b, o in result["offline"].items()
                for mode in args["bodies"]
                if o.get(f"{mode}_batch_1")
            )
            + "."
        ),
        "",
    ]
    for backend, info in result["servers"].items():
        ln = _lengths(info["outputs"], "cycle")
        lines.append(
            "Decoding steps of a batch of 8 cycled sentences "
            f"({info['model'].get('backend', backend)}): "
            f"{ln['batch8_steps']:.1f} on average (the longest row of each group of "
            f"8), vs {ln['tokens']:.1f} tokens per sentence."
        )
    lines += ["", "## Target", "", "| target | measured | |", "|---|---|---|"]
    lines += [
        f"| {what} | {measured} | {'pass' if ok else 'MISS'}{' (contended)' if contended else ''} |"
        for what, measured, ok, contended in verdicts
    ]
    lines += ["", "## Every point", "", points_table(points), ""]
    if result["failures"]:
        lines += ["## Servers that failed", ""]
        lines += [f"- **{b}**: {why.splitlines()[0]}" for b, why in result["failures"].items()]
        lines.append("")
    lines += ["## Translations (each sentence posted once before the load)", ""]
    for backend, info in result["servers"].items():
        lines += [
            f"`/model` ({backend}): `{json.dumps(info['model'], ensure_ascii=False)[:600]}`",
            "",
            (
                f"| # | Danish | {info['model'].get('backend', backend)} translation "
                "| words | tokens |"
            ),
            "|---:|---|---|---:|---:|",
        ]
        for i, o in enumerate(info["outputs"][:8]):
            lines.append(
                f"| {i + 1} | {o['text']} | {o['translation']} | {o['words']} | {o['tokens']} |"
            )
        lines += [
            (
                f"| | ({len(info['outputs'])} sentences in all) | | "
                f"{_lengths(info['outputs'], 'cycle')['words']:.1f} (mean) | "
                f"{_lengths(info['outputs'], 'cycle')['tokens']:.1f} (mean) |"
            ),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
