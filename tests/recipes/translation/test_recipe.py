"""The recipe end to end on small real data: from scratch, from a checkpoint, and gettext."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opsline.data.dataset import write_dataset
from opsline.recipes.registry import get_recipe

SMALL = [
    "trainer=debug",
    "trainer.max_epochs=1",
    "recipe.data.max_pairs=400",
    "recipe.data.val_fraction=0.1",
    "recipe.data.test_fraction=0.1",
    "recipe.eval.max_new_tokens=8",
    "recipe.eval.samples=2",
    "model=tiny",
]


def test_importing_the_recipe_loads_no_heavy_library():
    code = (
        "import sys, opsline.recipes.translation as t; t.TranslationRecipe; "
        "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'tokenizers', "
        "'sacrebleu', 'gradio') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, compose):
    recipe = get_recipe("translation")
    return write_dataset(
        recipe.prepare(compose(*SMALL)), tmp_path_factory.mktemp("data"), "translation"
    )


def test_train_from_scratch_logs_metrics_samples_and_attribution(
    small_dataset, compose, recording_run, tmp_path
):
    recipe = get_recipe("translation")
    cfg = compose(*SMALL, "model.val_bleu_samples=5")
    trained = recipe.train(cfg, small_dataset, recording_run, tmp_path / "model")
    assert trained.kind == "marian"
    epoch_metrics = [m for step, m in recording_run.metrics if step == 0]
    assert epoch_metrics and {"train_loss", "val_loss", "val_bleu"} <= set(epoch_metrics[0])
    samples = recording_run.texts["samples/val_translations.tsv"].splitlines()
    assert samples[0] == "source\treference\tgreedy\tbeam4" and len(samples) == 3
    card = json.loads((trained.model_dir / "opsline_model.json").read_text())
    assert card["tokenizer"]["vocab_size"] <= 400
    assert "tatoeba.org" in card["data"]["attribution_examples"][0]
    assert "CC-BY 2.0 (France)" in (trained.model_dir / "README.md").read_text()
    evaluation = recipe.evaluate(
        cfg, recipe.load_predictor(trained.model_dir), small_dataset.frame("test")
    )
    assert set(evaluation.metrics) == {"bleu", "chrf", "pairs"}
    assert 0 <= evaluation.metrics["bleu"] <= 100


def test_pretrained_checkpoint_is_fine_tuned_through_the_same_path(
    small_dataset, compose, recording_run, tmp_path, sentences, model_dir_factory
):
    checkpoint = model_dir_factory(tmp_path / "checkpoint", sentences, vocab_size=350)
    (checkpoint / "opsline_model.json").unlink()  # a plain Hugging Face directory
    recipe = get_recipe("translation")
    cfg = compose(*SMALL, f"model.pretrained={checkpoint}")
    trained = recipe.train(cfg, small_dataset, recording_run, tmp_path / "model")
    assert trained.kind == "pretrained"
    predictor = recipe.load_predictor(trained.model_dir)
    # The checkpoint's own tokenizer and architecture were kept (no new tokenizer trained).
    assert len(predictor.tokenizer) == 350
    assert predictor.network.config.d_model == 16
    assert predictor.predict(recipe.sample_requests())[0].translation is not None


def test_gettext_source_prepares_and_validates(compose, tmp_path, monkeypatch):
    from pathlib import Path

    from opsline.data.validation import validate_dataset

    if not Path("/usr/share/locale/da/LC_MESSAGES").is_dir():
        pytest.skip("no Danish gettext catalogs installed")
    recipe = get_recipe("translation")
    cfg = compose("recipe.data.source=gettext")
    dataset = write_dataset(recipe.prepare(cfg), tmp_path / "data", "translation")
    assert dataset.manifest["splits"]["train"]["rows"] > 5_000
    assert dataset.frame("test")["attribution"].str.startswith("gettext ").all()
    result = validate_dataset(dataset, recipe.checks(cfg))
    assert result.ok, result.report()
