"""In-process house_price inference: the old pandas path vs the compiled plan, native vs ONNX.

What one ``predict`` costs without HTTP or batching, pinned to one core (torch, LightGBM
and ONNX Runtime on one thread), for one request and for a batch of 256:

* ``pandas (old)`` — ``Preprocessor.complete`` + ``matrix`` / ``gbm_frame`` per call, the
  LightGBM pandas-categorical path: the request path before the plan;
* ``plan + native`` — ``predictor.predict`` (FeaturePlan, torch / LightGBM);
* ``plan + onnx`` — the same with ``model.onnx`` in ONNX Runtime.

Models: trained here from the Ames data (the GBM with its real config; the MLP for 3 epochs,
which does not change its size or speed) and exported through the pipeline's ONNX step
into ``--work`` (default: a temp dir, removed after); a ``--work`` dir that already holds
``mlp/`` and ``gbm/`` with ``model.onnx`` is reused. Nothing is written to the repo::

    .venv/bin/python benchmarks/house_price_inprocess.py [--work /tmp/hp-bench] [--seconds 1]

Targets: one row <= 0.5 ms, 256 rows >= 20,000 rows/s. Results: house_price_inprocess.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch/LightGBM start OpenMP
os.environ["OPSLINE_ORT_THREADS"] = "1"


def timed(fn, seconds: float, min_calls: int = 5) -> float:
    """Median seconds per call of ``fn`` over about ``seconds`` of calls (after warm-up)."""
    for _ in range(3):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < min_calls or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def train_models(work: Path) -> None:
    """Train + export both kinds into ``work/{mlp,gbm}`` (skipped when already there)."""
    if all((work / k / "model.onnx").is_file() for k in ("mlp", "gbm")):
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/recipes/house_price"))
    from conftest import RecordingRun, compose_config

    from opsline.data.dataset import write_dataset
    from opsline.pipeline import export_onnx
    from opsline.recipes.registry import get_recipe

    recipe = get_recipe("house_price")
    dataset = write_dataset(recipe.prepare(compose_config()), work / "data", "house_price")
    for kind, extra in (("gbm", ["model.num_threads=1"]), ("mlp", ["trainer.max_epochs=3"])):
        cfg = compose_config(
            "trainer.enable_progress_bar=false", f"model=house_price/{kind}", *extra
        )
        recipe.train(cfg, dataset, RecordingRun(), work / kind)
        record = export_onnx(recipe, cfg, work / kind, dataset)
        print(f"{kind}: ONNX parity {'passed' if record.passed else 'FAILED'}: {record.reason}")


def old_pandas_path(native):
    """The request path before the plan, as it was: pandas per call."""
    pre = native.preprocessor

    def run(records):
        frame = pre.complete(records)
        if native.kind == "mlp":
            return native.to_prices(native.forward_native(pre.matrix(frame)))
        return native.to_prices(native.booster.predict(pre.gbm_frame(frame)))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="where models are trained (kept)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per measurement")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, like a busy server

    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from opsline.recipes.house_price import HousePriceRecipe, sample_requests
    from opsline.recipes.house_price.schemas import HousePriceRequest

    work = args.work or Path(tempfile.mkdtemp(prefix="hp-bench-"))
    try:
        started = time.perf_counter()
        train_models(work)
        print(f"models ready in {time.perf_counter() - started:.0f} s ({work})")
        test = pd.read_parquet(work / "data" / "test.parquet")
        fields = HousePriceRequest.model_fields
        batch = [
            # Parquet rows carry numpy scalars; the API's strict schema is for JSON bodies.
            HousePriceRequest.model_validate(
                {k: v for k, v in row.items() if k in fields and pd.notna(v)}, strict=False
            )
            for row in test.head(256).to_dict("records")
        ]
        one = sample_requests()[:1]
        recipe = HousePriceRecipe()
        rows = []
        for kind in ("mlp", "gbm"):
            native = recipe.load_predictor(work / kind, backend="native")
            onnx = recipe.load_predictor(work / kind, backend="onnx")
            old = old_pandas_path(native)
            cases = [
                ("pandas (old)", lambda reqs, f=old: f([r.record() for r in reqs])),
                ("plan + native", native.predict),
                ("plan + onnx", onnx.predict),
            ]
            for name, fn in cases:
                single = timed(lambda fn=fn: fn(one), args.seconds)
                many = timed(lambda fn=fn: fn(batch), args.seconds)
                rows.append((kind, name, single * 1e3, len(batch) / many))
            prep = native.preprocess
            single = timed(lambda prep=prep: prep(one), args.seconds / 2)
            many = timed(lambda prep=prep: prep(batch), args.seconds / 2)
            rows.append((kind, "  plan preprocess only", single * 1e3, len(batch) / many))
        print("\n| model | path | 1 row: ms | 256 rows: rows/s |\n|---|---|---:|---:|")
        for kind, name, ms, rps in rows:
            print(f"| {kind} | {name} | {ms:.3f} | {rps:,.0f} |")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
