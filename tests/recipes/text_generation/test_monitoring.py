"""Monitoring hooks of the text-generation recipe: drift features of known prompts and
reference requests (passage openings) the served model accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsline.errors import UsageError
from opsline.recipes.registry import get_recipe
from opsline.recipes.text_generation.monitoring import (
    FEATURES,
    PROMPT_CHARS,
    REFERENCE_NEW_TOKENS,
    english_share,
    opening,
)
from opsline.recipes.text_generation.schemas import GenerationRequest, GenerationResponse

from .conftest import build_tiny_lm


@pytest.fixture(scope="module")
def recipe():
    return get_recipe("text_generation")


def answer(tokens: int) -> GenerationResponse:
    return GenerationResponse(text=" x" * tokens, tokens=tokens, finish_reason="length")


def test_features_of_known_prompts(recipe) -> None:
    english = GenerationRequest(prompt="ROMEO:\nBut soft, what light through yonder window breaks?")
    danish = GenerationRequest(prompt="Jeg kan godt lide at læse bøger om aftenen.")
    rows = recipe.monitored_features([english, danish], [answer(12), answer(3)])
    assert [list(row) for row in rows] == [list(FEATURES)] * 2
    assert rows[0]["input_chars"] == 57.0 and rows[0]["input_words"] == 9.0
    assert (rows[0]["output_tokens"], rows[1]["output_tokens"]) == (12.0, 3.0)
    assert rows[0]["english_share"] > 0.2 > rows[1]["english_share"] == 0.0


def test_english_share_counts_words_only() -> None:
    # now, is, the, of, our of 7 words (winter, discontent); "1594" and "," are no words.
    assert english_share("Now is the winter of our discontent, 1594!") == pytest.approx(5 / 7)
    assert english_share("Thou art more lovely") == pytest.approx(2 / 4)
    assert english_share("...") == 0.0


def test_opening_is_the_speaker_and_first_line_cut_between_words() -> None:
    passage = "HAMLET:\nTo be, or not to be, that is the question:\nWhether 'tis nobler"
    assert opening(passage) == "HAMLET:\nTo be, or not to be, that is the question:"
    long = "KING:\n" + "word " * 40
    cut = opening(long)
    assert len(cut) <= PROMPT_CHARS and cut.endswith("word") and cut.startswith("KING:\n")


@pytest.fixture(scope="module")
def hamlet():
    from omegaconf import OmegaConf

    from opsline.config import config_dir
    from opsline.recipes.text_generation.corpus import prepare

    cfg = OmegaConf.load(config_dir() / "data" / "text_generation" / "shakespeare.yaml")
    cfg.recipe.data.plays = ["hamlet"]
    return prepare(cfg)["train"]


def test_reference_requests_are_passage_openings_the_model_serves(
    recipe, hamlet, tmp_path: Path
) -> None:
    frame = hamlet.head(recipe.reference_rows)
    requests = recipe.requests_from_frame(frame)
    assert len(requests) == len(frame)
    assert requests[0].prompt == "BERNARDO:\nWho's there?"  # Hamlet's first speech
    assert all(len(r.prompt) <= PROMPT_CHARS for r in requests)
    assert all(r.max_new_tokens == REFERENCE_NEW_TOKENS for r in requests)
    assert [r.seed for r in requests] == list(range(len(requests)))  # reproducible
    # The fixture LM's 300-token BPE spends about a token per character: give it room.
    predictor = recipe.load_predictor(build_tiny_lm(tmp_path / "lm", context_limit=128))
    try:
        responses = predictor.predict(requests)
    finally:
        predictor.close()
    rows = recipe.monitored_features(requests, responses)
    assert all(list(row) == list(FEATURES) for row in rows)
    assert all(0 <= row["output_tokens"] <= REFERENCE_NEW_TOKENS for row in rows)
    assert sum(row["english_share"] for row in rows) / len(rows) > 0.2


def test_reference_prompts_fit_the_tiny_models_context(recipe, hamlet) -> None:
    # The recipe's smallest model: a 512-token BPE fitted on the corpus, 64-token context.
    from opsline.recipes.text_generation.model import train_bpe

    tokenizer = train_bpe(list(hamlet["clean_text"]), 512, 64)
    longest = max(len(tokenizer(r.prompt)["input_ids"]) for r in recipe.requests_from_frame(hamlet))
    assert longest + REFERENCE_NEW_TOKENS <= 64


def test_no_feedback(recipe) -> None:
    assert recipe.feedback_type is None and recipe.log_request_body is True
    assert recipe.live_quality([{"text": "x", "tokens": 1}], ["y"]) == {}
    with pytest.raises(UsageError):
        recipe.feedback_frame([{"prompt": "x"}], ["y"])
