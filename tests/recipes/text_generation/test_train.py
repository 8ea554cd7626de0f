"""Training and export of the text-generation recipe on tiny models (seconds on one core).

A "pretrained" base here is a tiny Llama saved with ``save_pretrained`` into a temporary
directory and passed as ``model.pretrained=<dir>``: the same code path as distilgpt2 or a
local checkpoint, without the network or the 20-second SmolLM2 load.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsline.config import load_config, settings
from opsline.errors import UsageError
from opsline.recipes.text_generation.config import TextModelConfig

LINES = [
    "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east.",
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\nDeny thy father.",
    "HAMLET:\nTo be, or not to be, that is the question:\nWhether 'tis nobler.",
    "MACBETH:\nTomorrow, and tomorrow, and tomorrow,\nCreeps in this petty pace.",
    "KING LEAR:\nBlow, winds, and crack your cheeks! rage! blow!",
    "PORTIA:\nThe quality of mercy is not strain'd,\nIt droppeth as the gentle rain.",
]
TINY = [
    "model=tiny",
    "trainer.enable_progress_bar=false",
    "model.num_threads=1",
    "model.block_size=32",
    "trainer.val_check_interval=null",
    "recipe.eval.max_blocks=4",
]


class FakeDataset:
    """What ``Recipe.train`` reads from a prepared dataset: frames per split and a version."""

    version = "test-version"

    def __init__(self, repeats: int = 30):
        import pandas as pd

        self.frames = {
            "train": pd.DataFrame({"clean_text": LINES * repeats}),
            "val": pd.DataFrame({"clean_text": LINES[::-1] * 3}),
            "test": pd.DataFrame({"clean_text": LINES[1:] * 3}),
        }

    def frame(self, split: str):
        return self.frames[split]


class RecordingRun:
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.steps: list[tuple[int | None, dict]] = []
        self.texts: dict[str, str] = {}

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.metrics.update(metrics)
        self.steps.append((step, dict(metrics)))

    def log_text(self, text: str, name: str) -> None:
        self.texts[name] = text


@pytest.fixture
def tiny_base(tmp_path: Path) -> Path:
    """A tiny pretrained-looking causal LM + tokenizer directory (random weights)."""
    import torch

    from opsline.recipes.text_generation.model import tiny_network, train_bpe

    cfg = load_config("text_generation", TINY)
    tokenizer = train_bpe(LINES * 10, 300, 64)
    torch.manual_seed(0)
    network = tiny_network(settings(TextModelConfig, cfg.model), tokenizer)
    base = tmp_path / "base"
    network.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return base


def _train(tmp_path: Path, *overrides: str):
    from opsline.recipes.registry import get_recipe

    cfg = load_config("text_generation", [*TINY, *overrides])
    run = RecordingRun()
    out = tmp_path / "model"
    trained = get_recipe("text_generation").train(cfg, FakeDataset(), run, out)
    return trained, run, json.loads((out / "opsline_model.json").read_text())


def _load(model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (
        AutoModelForCausalLM.from_pretrained(model_dir).eval(),
        AutoTokenizer.from_pretrained(model_dir),
    )


def _perplexity(model_dir_or_model, tokenizer, texts, block_size=32) -> float:
    from opsline.recipes.text_generation.evaluation import held_out
    from opsline.recipes.text_generation.lm_data import blocks_of

    return held_out(model_dir_or_model, blocks_of(tokenizer, texts, block_size))["perplexity"]


def test_tiny_model_trains_from_scratch_and_exports_a_plain_hf_directory(tmp_path):
    trained, run, card = _train(tmp_path, "trainer.max_steps=40", "model.lr=1e-2")
    files = {p.name for p in trained.model_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "opsline_model.json",
        "README.md",
    } <= files
    # Nothing a server loads is a pickle (Lightning checkpoints never reach the export).
    assert not [f for f in files if f.endswith((".bin", ".pt", ".ckpt", ".pkl"))]
    assert trained.kind == card["kind"] == "tiny"
    assert card["recipe"] == "text_generation"
    assert card["block_size"] == 32 and card["context_limit"] == 32
    assert card["base_eval"] == {}  # random weights: no base perplexity to compare with
    assert card["training"]["steps"] == run.metrics["optimizer_steps"] == 40

    model, tokenizer = _load(trained.model_dir)
    # The trained model has learnt its corpus: far below a uniform guess over the vocabulary.
    assert _perplexity(model, tokenizer, LINES) < len(tokenizer) / 4


def test_full_fine_tune_records_base_perplexity_and_lowers_it(tmp_path, tiny_base):
    trained, _, card = _train(
        tmp_path, f"model.pretrained={tiny_base}", "trainer.max_steps=30", "model.lr=1e-2"
    )
    assert trained.kind == card["kind"] == "full"
    assert card["base_model"] == str(tiny_base)
    base = {v["split"]: v for v in card["base_eval"].values()}
    assert set(base) == {"val", "test"}
    model, tokenizer = _load(trained.model_dir)
    test_texts = list(FakeDataset().frame("test")["clean_text"])
    base_model, _ = _load(tiny_base)
    # The card's base figure is the untouched model's, on the same blocks evaluate scores.
    from opsline.recipes.text_generation.evaluation import held_out
    from opsline.recipes.text_generation.lm_data import blocks_of

    blocks = blocks_of(tokenizer, test_texts, 32, 4)
    assert held_out(base_model, blocks)["perplexity"] == pytest.approx(
        base["test"]["perplexity"], rel=1e-4
    )
    assert held_out(model, blocks)["perplexity"] < 0.7 * base["test"]["perplexity"]


def test_lora_adapters_are_merged_into_a_plain_model(tmp_path, tiny_base):
    import torch

    trained, _, card = _train(
        tmp_path,
        f"model.pretrained={tiny_base}",
        "model.lora.enabled=true",
        "model.lora.r=4",
        "model.lora.alpha=8",
        "trainer.max_steps=20",
        "model.lr=2e-2",
    )
    assert trained.kind == card["kind"] == "lora"
    assert card["training"]["lora"]["r"] == 4
    model, _ = _load(trained.model_dir)
    base, _ = _load(tiny_base)
    state = model.state_dict()
    assert not [k for k in state if "lora" in k]  # merged: serving needs no peft
    # Adapters trained only a small share of the weights ...
    assert 0 < card["training"]["trainable_parameters"] < 0.5 * card["architecture"]["parameters"]
    # ... and the merge really changed the attention projections they were attached to.
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(state[name], base.state_dict()[name])
    # Parts without adapters (embeddings, norms) are untouched.
    assert torch.equal(state["model.norm.weight"], base.state_dict()["model.norm.weight"])


def test_step_budget_and_validation_interval_are_honoured(tmp_path, isolated_home):
    _, run, card = _train(tmp_path, "trainer.max_steps=9", "trainer.val_check_interval=3")
    assert card["training"]["steps"] == 9
    validated_at = [step for step, m in run.steps if "steps/val_loss" in m]
    assert validated_at == [3, 6, 9]
    # Trained through build_trainer: the shared live training metrics see this recipe's
    # steps and tokens (its batches use the Hugging Face {"input_ids": ...} layout).
    from prometheus_client.parser import text_string_to_metric_families

    [prom] = (isolated_home / "metrics").glob("training-*.prom")
    samples = {
        s.name: s.value for f in text_string_to_metric_families(prom.read_text()) for s in f.samples
    }
    assert samples["opsline_training_steps_total"] == 9
    assert samples["opsline_training_tokens_per_second"] > 0


def test_missing_gguf_package_is_a_clear_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not installed"):
        _train(tmp_path, "model=smollm2", "model.gguf_package=no_such_package_xyz")


def test_block_size_larger_than_the_data_is_a_clear_usage_error(tmp_path):
    with pytest.raises(UsageError, match="block_size"):
        _train(tmp_path, "model.block_size=100000", "model.tiny.vocab_size=300")


def test_recipe_registers_with_perplexity_and_one_model_per_corpus():
    from opsline.recipes.registry import get_recipe, list_recipes

    assert "text_generation" in list_recipes()
    recipe = get_recipe("text_generation")
    assert (recipe.primary_metric, recipe.greater_is_better) == ("perplexity", False)
    assert recipe.model_name(load_config("text_generation")) == "text_generation"
    # Another corpus is another registered model: the gate never compares across test sets.
    assert (
        recipe.model_name(load_config("text_generation", ["data=local_file"]))
        == "text_generation_local_file"
    )
    prompts = [r.prompt for r in recipe.sample_requests()]
    assert prompts and all(p.split("\n")[0].isupper() for p in prompts)  # SPEAKER: lines
