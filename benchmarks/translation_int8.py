"""Float32 vs dynamic-int8 translation model: greedy sentences/s on one core, and val BLEU.

What it does (all in-process, one CPU core via ``os.sched_setaffinity``, one torch thread):

1. builds the **default architecture** (``configs/model/translation/marian.yaml``: Marian
   256d, 3+3 layers, 4,000-token BPE; 6.8 M parameters) and trains it for ``--steps``
   AdamW steps only (the full 6 epochs take ~20 min of 2 cores; latency depends on the size,
   not on the fit), then exports it as training does (safetensors + tokenizer + card);
2. runs the real registration gate (``quantize.export_int8``: greedy BLEU on the whole val
   split, float vs int8) and writes its record as the core would (``parity.json``);
3. loads the directory twice through ``TranslationPredictor.load``: ``backend="native"``
   (float32) and ``backend="auto"`` (int8 when the gate passed), and times
   ``predictor.predict`` on 10-word Danish sentences at batch 1 and 8, float and int8
   interleaved round by round so load from other processes hits both alike.

The BLEU numbers come from a *briefly trained* model: they show whether int8 keeps what
float32 produces, not how good the recipe's model is (README: test BLEU 40.4 after 6 epochs).

    python benchmarks/translation_int8.py [--steps 400] [--core 1] [--rounds 5]
        [--model-dir DIR]   # reuse (or keep) the trained directory; skips training if present

Results: ``benchmarks/translation_int8.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TATOEBA = (ROOT / ".." / "shared" / "data" / "tatoeba-da-en" / "dan-eng.tsv").resolve()


def load_cfg(*overrides: str):
    from opsline.config import load_config

    return load_config("translation", [f"recipe.data.path={TATOEBA}", *overrides])


def train_briefly(cfg, splits, out_dir: Path, steps: int, seed: int = 42) -> dict:
    """The default network trained for ``steps`` steps, exported as ``train.py`` does."""
    import torch

    from opsline.recipes.translation.batching import encode_pairs, loader
    from opsline.recipes.translation.card import write_card
    from opsline.recipes.translation.model import build_network, warmup_decay
    from opsline.recipes.translation.tokenizer import train_tokenizer

    mcfg, train = cfg.model, splits["train"]
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(
        list(train["da"]) + list(train["en"]),
        int(mcfg.vocab_size),
        int(mcfg.min_frequency),
        max_length=int(mcfg.max_source_tokens),
    )
    pairs = encode_pairs(
        tokenizer,
        train["da"],
        train["en"],
        int(mcfg.max_source_tokens),
        int(mcfg.max_target_tokens),
        "",
    )
    network = build_network(mcfg, tokenizer).train()
    optimizer = torch.optim.AdamW(
        network.parameters(),
        lr=float(mcfg.lr),
        betas=(0.9, 0.98),
        weight_decay=float(mcfg.weight_decay),
    )
    warmup = min(int(mcfg.warmup_steps), steps // 4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_decay(s, warmup, steps)
    )
    pad_id, step, started, losses = int(tokenizer.pad_token_id), 0, time.process_time(), []
    while step < steps:
        for batch in loader(pairs, int(mcfg.batch_size), pad_id, True, seed + step):
            loss = network(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                labels=batch["labels"],
            ).loss  # pads are -100 already
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), float(mcfg.grad_clip))
            optimizer.step()
            schedule.step()
            losses.append(float(loss))
            step += 1
            if step % 100 == 0:
                print(
                    f"  step {step}/{steps}: loss {statistics.mean(losses[-100:]):.2f}", flush=True
                )
            if step >= steps:
                break
    network.eval().save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    params = sum(p.numel() for p in network.parameters())
    write_card(
        out_dir,
        "marian",
        model_name="marian",
        source_prefix="",
        max_source_tokens=int(mcfg.max_source_tokens),
        max_new_tokens=int(mcfg.max_target_tokens),
        tokenizer={
            "vocab_size": len(tokenizer),
            "pad_id": pad_id,
            "eos_id": int(tokenizer.eos_token_id),
        },
        architecture={"summary": f"marian, d_model {mcfg.d_model}, {params:,} parameters"},
        data={"source": "tatoeba", "train_pairs": len(train)},
        training={"steps": steps, "cpu_seconds": round(time.process_time() - started, 1)},
    )
    return {
        "steps": steps,
        "final_loss": statistics.mean(losses[-50:]),
        "parameters": params,
        "train_cpu_s": time.process_time() - started,
    }


def ten_word_sentences(splits, n: int = 8) -> list[str]:
    """``n`` distinct 10-word Danish sentences from the test split (never trained on)."""
    found = [s for s in dict.fromkeys(splits["test"]["da"]) if len(s.split()) == 10]
    if len(found) < n:
        sys.exit(f"only {len(found)} ten-word sentences in the test split")
    return found[:n]


def time_calls(predictor, requests, repeats: int) -> tuple[list[float], int]:
    """Seconds per ``predict`` call, and target tokens of the last call's translations."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        responses = predictor.predict(requests)
        times.append(time.perf_counter() - start)
    tokens = sum(len(predictor.tokenizer(r.translation)["input_ids"]) for r in responses)
    return times, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--core", type=int, default=1, help="CPU to pin to")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=6, help="calls per round and batch")
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args()

    os.sched_setaffinity(0, {args.core})
    os.environ["OPSLINE_TRANSLATION_THREADS"] = "1"  # the server default, read at load
    import torch

    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars
    from opsline.data.dataset import write_dataset
    from opsline.export.parity import write_parity
    from opsline.recipes.translation.cleaning import prepare
    from opsline.recipes.translation.predictor import TranslationPredictor
    from opsline.recipes.translation.quantize import export_int8
    from opsline.recipes.translation.schemas import TranslationRequest

    load_before = os.getloadavg()
    cfg = load_cfg("model.quantize=true")
    splits = prepare(cfg)
    work = Path(tempfile.mkdtemp(prefix="opsline-int8-bench-"))
    model_dir = args.model_dir or work / "model"
    training = None
    if not (model_dir / "model.safetensors").is_file():
        model_dir.mkdir(parents=True, exist_ok=True)
        print(f"training the default architecture for {args.steps} steps on CPU {args.core} ...")
        training = train_briefly(cfg, splits, model_dir, args.steps)
        print(f"  {training}")
    dataset = write_dataset(splits, work / "data", "translation")
    started = time.perf_counter()
    record = export_int8(cfg, model_dir, dataset)
    gate_s = time.perf_counter() - started
    write_parity(model_dir, record)
    print(f"gate ({gate_s:.0f} s): {record.reason}")

    native = TranslationPredictor.load(model_dir, backend="native")
    started = time.perf_counter()
    int8 = TranslationPredictor.load(model_dir, backend="auto")
    load_int8_s = time.perf_counter() - started
    if int8.backend != "int8":
        sys.exit(f"the gate failed, nothing int8 to time: {int8.info['backend_reason']}")
    sentences = ten_word_sentences(splits)
    rows = []
    for batch in (1, 8):
        requests = [TranslationRequest(text=s) for s in sentences[:batch]]
        per = {"float32": [], "int8": []}
        tokens = {}
        for predictor in (native, int8):  # warm-up: first calls allocate, pick kernels
            time_calls(predictor, requests, 2)
        for _ in range(args.rounds):
            for name, predictor in (("float32", native), ("int8", int8)):
                times, tokens[name] = time_calls(predictor, requests, args.repeats)
                per[name] += times
        for name, times in per.items():
            median = statistics.median(times)
            rows.append(
                {
                    "batch": batch,
                    "backend": name,
                    "median_ms": median * 1000,
                    "sentences_per_s": batch / median,
                    "target_tokens": tokens[name],
                    "tokens_per_s": tokens[name] / median,
                }
            )
        print(
            f"batch {batch}: "
            + ", ".join(f"{r['backend']} {r['sentences_per_s']:.1f} sent/s" for r in rows[-2:]),
            flush=True,
        )
    result = {
        "torch": torch.__version__,
        "engine": torch.backends.quantized.engine,
        "core": args.core,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "training": training,
        "gate": record.to_dict(),
        "gate_seconds": gate_s,
        "int8_load_seconds": load_int8_s,
        "sentences": sentences[:8],
        "example": {
            "float32": native.translate(sentences[:1])[0],
            "int8": int8.translate(sentences[:1])[0],
        },
        "rows": rows,
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
