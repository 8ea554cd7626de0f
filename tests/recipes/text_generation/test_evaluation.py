"""Token blocks, held-out perplexity, the base-model comparison and sample generations."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from opsline.config import load_config, settings
from opsline.recipes.text_generation.config import TextModelConfig

TEXTS = [
    "ROMEO:\nBut soft, what light through yonder window breaks?",
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?",
    "HAMLET:\nTo be, or not to be, that is the question.",
]


@pytest.fixture(scope="module")
def lm():
    """A tiny random Llama and a BPE tokenizer fitted on the texts."""
    import torch

    from opsline.recipes.text_generation.model import tiny_network, train_bpe

    torch.set_num_threads(1)
    cfg = load_config("text_generation", ["model=tiny", "model.block_size=16"])
    tokenizer = train_bpe(TEXTS * 5, 280, 64)
    torch.manual_seed(0)
    return tiny_network(settings(TextModelConfig, cfg.model), tokenizer).eval(), tokenizer


def test_token_stream_ends_every_passage_with_end_of_text(lm):
    from opsline.recipes.text_generation.lm_data import token_stream

    _, tokenizer = lm
    stream = token_stream(tokenizer, TEXTS)
    eos = tokenizer.eos_token_id
    assert stream.count(eos) == len(TEXTS) and stream[-1] == eos
    pieces, current = [], []
    for token in stream:
        if token == eos:
            pieces.append(tokenizer.decode(current))
            current = []
        else:
            current.append(token)
    assert pieces == TEXTS  # byte-level BPE round-trips the text exactly


def test_chunk_drops_the_partial_tail_and_spread_is_even_and_stable():
    from opsline.recipes.text_generation.lm_data import chunk, spread

    blocks = chunk(list(range(103)), 10)
    assert blocks.shape == (10, 10) and blocks[-1, -1].item() == 99
    picked = spread(blocks, 4)
    assert [row[0].item() for row in picked] == [0, 30, 60, 90]  # whole split, not the head
    assert spread(blocks, None) is blocks and spread(blocks, 50) is blocks
    assert chunk([1, 2, 3], 10).shape == (0, 10)


def test_split_key_identifies_texts_and_blocking():
    from opsline.recipes.text_generation.lm_data import split_key

    key = split_key(TEXTS, 16, 8)
    assert key == split_key(list(TEXTS), 16, 8)
    assert (
        len(
            {
                key,
                split_key(TEXTS[:2], 16, 8),
                split_key(TEXTS, 32, 8),
                split_key(TEXTS, 16, None),
                split_key(TEXTS[::-1], 16, 8),
            }
        )
        == 5
    )


def test_held_out_is_the_mean_next_token_nll(lm):
    import torch

    from opsline.recipes.text_generation.evaluation import held_out
    from opsline.recipes.text_generation.lm_data import blocks_of

    model, tokenizer = lm
    blocks = blocks_of(tokenizer, TEXTS * 3, 16)
    with torch.no_grad():  # by hand: log-softmax of every position, the next token's entry
        logp = torch.log_softmax(model(input_ids=blocks).logits[:, :-1], dim=-1)
        nll = -logp.gather(-1, blocks[:, 1:, None]).squeeze(-1)
    result = held_out(model, blocks, batch_size=2)  # batches of unequal size on purpose
    assert result["tokens"] == nll.numel()
    assert result["loss"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(nll.mean().item()), rel=1e-5)


def _predictor(lm, card):
    model, tokenizer = lm
    return SimpleNamespace(model=model, tokenizer=tokenizer, card=card, context_limit=16)


def test_evaluate_reports_base_perplexity_only_for_the_tokens_it_was_measured_on(lm):
    import pandas as pd

    from opsline.recipes.text_generation.evaluation import evaluate, held_out
    from opsline.recipes.text_generation.lm_data import blocks_of, split_key

    cfg = load_config(
        "text_generation", ["model=tiny", "recipe.eval.max_blocks=4", "recipe.eval.samples=0"]
    )
    model, tokenizer = lm
    test = pd.DataFrame({"clean_text": TEXTS * 4})
    texts = list(test["clean_text"])
    measured = held_out(model, blocks_of(tokenizer, texts, 16, 4))
    base = {
        "split": "test",
        "loss": measured["loss"] + 1.0,
        "perplexity": measured["perplexity"] * math.e,
        "tokens": measured["tokens"],
    }
    card = {"block_size": 16, "base_eval": {split_key(texts, 16, 4): base}}

    metrics = evaluate(cfg, _predictor(lm, card), test).metrics
    assert metrics["perplexity"] == pytest.approx(measured["perplexity"])
    assert metrics["base_perplexity"] == pytest.approx(base["perplexity"])
    assert metrics["perplexity_reduction"] == pytest.approx(1 - 1 / math.e)
    assert metrics["tokens"] == measured["tokens"] and metrics["blocks"] == 4

    other = pd.DataFrame({"clean_text": TEXTS[::-1] * 4})  # another split: no base figure
    metrics = evaluate(cfg, _predictor(lm, card), other).metrics
    assert "base_perplexity" not in metrics and "perplexity_reduction" not in metrics
    assert math.isfinite(metrics["perplexity"])


def test_samples_continue_the_fixed_prompts_reproducibly(lm):
    import pandas as pd

    from opsline.recipes.text_generation.evaluation import PROMPTS, evaluate

    cfg = load_config(
        "text_generation", ["model=tiny", "recipe.eval.samples=2", "recipe.eval.sample_tokens=6"]
    )
    frame = pd.DataFrame({"clean_text": TEXTS * 4})
    card = {"block_size": 16, "base_eval": {}}
    first = evaluate(cfg, _predictor(lm, card), frame).texts["samples.md"]
    again = evaluate(cfg, _predictor(lm, card), frame).texts["samples.md"]
    assert first == again  # fixed seed: the report only changes when the model does
    assert PROMPTS[0] in first and PROMPTS[1] in first and PROMPTS[2] not in first
    other_seed = load_config(
        "text_generation",
        ["model=tiny", "recipe.eval.samples=2", "recipe.eval.sample_tokens=6", "seed=7"],
    )
    assert evaluate(other_seed, _predictor(lm, card), frame).texts["samples.md"] != first


def test_model_card_readme_states_the_base_perplexity(tmp_path):
    from opsline.recipes.text_generation.card import read_card, write_card

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    write_card(
        tmp_path,
        "full",
        base_model="SmolLM2-135M-Instruct",
        context_limit=2048,
        block_size=256,
        base_eval={"k": {"split": "test", "loss": 3.9, "perplexity": 49.4, "tokens": 1000.0}},
    )
    assert read_card(tmp_path)["base_model"] == "SmolLM2-135M-Instruct"
    readme = (tmp_path / "README.md").read_text()
    assert "test: perplexity 49.40 on 1000 tokens" in readme and "full" in readme
