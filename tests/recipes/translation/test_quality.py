"""Quality gate: a small model trained for a few CPU minutes really translates.

The full-quality number (default model, ~25 min) is measured by
``benchmarks/translation_quality.py`` and reported in docs/recipes/translation.md; this test
trains the
``quick`` model for a short budget on the real Tatoeba train split and scores the first
500 pairs of the held-out test split with SacreBLEU.

Measured (seed 42, one thread, 3 epochs, ~2.4 CPU-minutes of training): BLEU 17.2, chrF 33.0.
The thresholds leave room for seed, thread-count and library-version noise while still
failing a model that copies its input (BLEU 0.9, chrF 13.6) or emits a fixed phrase.
"""

from __future__ import annotations

import pytest

from opsline.data.dataset import write_dataset
from opsline.recipes.registry import get_recipe

pytestmark = pytest.mark.quality

QUICK = [
    "model=quick",
    "model.num_threads=1",
    "trainer.enable_progress_bar=false",
    "recipe.eval.samples=0",
]
MIN_BLEU = 10.0
MIN_CHRF = 25.0


def test_quick_model_translates_held_out_tatoeba(compose, tmp_path, recording_run):
    import time

    recipe = get_recipe("translation")
    cfg = compose(*QUICK)
    dataset = write_dataset(recipe.prepare(cfg), tmp_path / "data", "translation")
    started = time.perf_counter()
    trained = recipe.train(cfg, dataset, recording_run, tmp_path / "model")
    minutes = (time.perf_counter() - started) / 60
    test = dataset.frame("test").head(500)
    metrics = recipe.evaluate(cfg, recipe.load_predictor(trained.model_dir), test).metrics
    print(f"quick model: {metrics} after {minutes:.1f} min")
    assert metrics["bleu"] >= MIN_BLEU, metrics
    assert metrics["chrf"] >= MIN_CHRF, metrics
