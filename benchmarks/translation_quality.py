"""Full-quality run of the translation recipe: BLEU/chrF on the Tatoeba test split.

Trains the default from-scratch model (``configs/model/translation/marian.yaml``) through
the real pipeline (prepare -> validate -> train -> evaluate -> register) in a scratch
workspace and prints the per-epoch curve, the test metrics and the training minutes::

    python benchmarks/translation_quality.py [--data PATH] [key=value ...]
    python benchmarks/translation_quality.py experiment=exp3 recipe.eval.num_beams=4

Results are recorded by hand in ``benchmarks/translation_results.md`` and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "../shared/data/tatoeba-da-en/dan-eng.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA.resolve()),
        help="Tatoeba dan-eng.tsv (default: the shared copy)",
    )
    parser.add_argument("--home", default=None, help="workspace (default: a temp dir)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.lr=5e-4")
    args = parser.parse_args()
    os.environ["OPSLINE_HOME"] = args.home or tempfile.mkdtemp(prefix="opsline-quality-")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

    from opsline import pipeline
    from opsline.tracking.runs import client

    overrides = [
        f"recipe.data.path={args.data}",
        "trainer.enable_progress_bar=false",
        *args.overrides,
    ]
    started = time.perf_counter()
    dataset = pipeline.prepare("translation", overrides)
    rows = {s: dataset.manifest["splits"][s]["rows"] for s in dataset.splits}
    result = pipeline.train("translation", overrides, say=print)
    total = time.perf_counter() - started
    mlflow = client()
    history = {}
    for key in ("train_loss", "val_loss", "val_bleu"):
        for m in mlflow.get_metric_history(result.run_id, key):
            history.setdefault(m.step, {})[key] = round(m.value, 3)
    run = mlflow.get_run(result.run_id)
    summary = {
        "overrides": overrides[1:],
        "rows": rows,
        "train_minutes": round(run.data.metrics.get("train_seconds", float("nan")) / 60, 1),
        "train_cpu_minutes": round(run.data.metrics.get("train_cpu_seconds", float("nan")) / 60, 1),
        "total_minutes": round(total / 60, 1),
        "epochs": {int(k): v for k, v in sorted(history.items())},
        "metrics": {k: round(v, 2) for k, v in result.metrics.items()},
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
