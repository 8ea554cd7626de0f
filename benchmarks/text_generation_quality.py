"""Full-quality run of the text-generation recipe: SmolLM2-135M fine-tuned on Shakespeare.

Runs the real pipeline (prepare -> validate -> train -> evaluate -> register) in a scratch
workspace with the default config (``configs/recipe/text_generation.yaml``,
``configs/model/text_generation/smollm2.yaml``) plus any overrides, and prints the base
and fine-tuned held-out perplexity, the reduction, the validation curve and wall/CPU time::

    python benchmarks/text_generation_quality.py
    python benchmarks/text_generation_quality.py trainer.max_steps=300 recipe.eval.max_blocks=null
    python benchmarks/text_generation_quality.py model.lora.enabled=true model.lr=1e-3

The issue's bar: test perplexity at least 30 % below the base model's within 20 minutes of
CPU training. Results are recorded by hand in ``benchmarks/text_generation_results.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="workspace (default: a temp dir)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.lr=1e-4")
    args = parser.parse_args()
    os.environ["OPSLINE_HOME"] = args.home or tempfile.mkdtemp(prefix="opsline-quality-")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

    from opsline import pipeline
    from opsline.tracking.runs import client

    overrides = ["trainer.enable_progress_bar=false", *args.overrides]
    load_before = os.getloadavg()
    started, cpu_started = time.perf_counter(), time.process_time()
    dataset = pipeline.prepare("text_generation", overrides)
    rows = {s: dataset.manifest["splits"][s]["rows"] for s in dataset.splits}
    result = pipeline.train("text_generation", overrides, say=print)
    total, total_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    mlflow = client()
    run = mlflow.get_run(result.run_id)
    curve = {
        m.step: round(math.exp(m.value), 2)
        for m in mlflow.get_metric_history(result.run_id, "steps/val_loss")
    }
    m = result.metrics
    summary = {
        "overrides": overrides[1:],
        "rows": rows,
        "base_test_perplexity": round(m.get("test_base_perplexity", float("nan")), 2),
        "test_perplexity": round(m["test_perplexity"], 2),
        "test_reduction": round(m.get("test_perplexity_reduction", float("nan")), 3),
        "base_val_perplexity": round(m.get("val_base_perplexity", float("nan")), 2),
        "val_perplexity": round(m["val_perplexity"], 2),
        "test_tokens": m.get("test_tokens"),
        "optimizer_steps": run.data.metrics.get("optimizer_steps"),
        "val_perplexity_by_step": curve,
        "fit_minutes": round(run.data.metrics.get("fit_seconds", float("nan")) / 60, 2),
        "fit_cpu_minutes": round(run.data.metrics.get("fit_cpu_seconds", float("nan")) / 60, 2),
        "train_minutes": round(run.data.metrics.get("train_seconds", float("nan")) / 60, 2),
        "train_cpu_minutes": round(run.data.metrics.get("train_cpu_seconds", float("nan")) / 60, 2),
        "total_minutes": round(total / 60, 2),
        "total_cpu_minutes": round(total_cpu / 60, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
