"""Monitoring hooks of the translation recipe: drift features of known sentences, reference
requests from a prepared split, and live BLEU against reference translations."""

from __future__ import annotations

import pytest

from opsline.errors import UsageError
from opsline.recipes.registry import get_recipe
from opsline.recipes.translation.monitoring import FEATURES, MIN_BLEU_ROWS, danish_share
from opsline.recipes.translation.schemas import TranslationRequest, TranslationResponse


@pytest.fixture(scope="module")
def recipe():
    return get_recipe("translation")


def answer(text: str) -> TranslationResponse:
    return TranslationResponse(translation=text, num_beams=1)


def test_features_of_known_sentences(recipe) -> None:
    danish = TranslationRequest(text="Jeg kan godt lide at læse bøger om aftenen.")
    english = TranslationRequest(text="I like to read books in the evening.")
    rows = recipe.monitored_features(
        [danish, english], [answer("I like reading books in the evening."), answer("Hej")]
    )
    assert [list(row) for row in rows] == [list(FEATURES)] * 2
    assert rows[0]["input_chars"] == 43.0 and rows[0]["input_words"] == 9.0
    assert rows[0]["output_words"] == 7.0 and rows[1]["output_words"] == 1.0
    assert rows[0]["danish_share"] > 0.5 and rows[1]["danish_share"] == 0.0


def test_danish_share_reads_the_words_not_the_punctuation() -> None:
    # hvor (frequent Danish) and nærmeste (æ) of 5 words; "den" is English too.
    assert danish_share("Hvor ligger den nærmeste togstation?") == pytest.approx(2 / 5)
    assert danish_share("Where is the nearest train station?") == 0.0
    assert danish_share("42 !?") == 0.0
    assert danish_share("BØGER OG BLADE") == pytest.approx(2 / 3)  # case-insensitive


def test_danish_scores_above_english_on_the_real_pairs(tatoeba_splits) -> None:
    pairs = tatoeba_splits["test"].head(200)
    danish = sum(danish_share(t) for t in pairs["da"]) / len(pairs)
    english = sum(danish_share(t) for t in pairs["en"]) / len(pairs)
    assert danish > 0.4
    assert english < 0.02


def test_reference_requests_are_the_distinct_sentences_and_translate(
    recipe, tatoeba_splits, tiny_model_dir
) -> None:
    frame = tatoeba_splits["test"].head(40)
    requests = recipe.requests_from_frame(frame)
    assert [r.text for r in requests] == list(dict.fromkeys(frame["da"]))
    assert all(r.num_beams == 1 for r in requests)
    responses = recipe.load_predictor(tiny_model_dir).predict(requests)
    rows = recipe.monitored_features(requests, responses)
    assert len(rows) == len(requests) and all(list(r) == list(FEATURES) for r in rows)
    assert [row["input_chars"] for row in rows] == [float(len(r.text)) for r in requests]


def test_live_bleu_is_sacrebleu_corpus_bleu(recipe) -> None:
    import sacrebleu

    references = [f"the cat sat on mat number {i}" for i in range(MIN_BLEU_ROWS)]
    hypotheses = [f"the cat sat on the mat number {i}" for i in range(MIN_BLEU_ROWS)]
    logged = [answer(h).model_dump(mode="json") for h in hypotheses]
    expected = sacrebleu.corpus_bleu(hypotheses, [references]).score
    assert recipe.live_quality(logged, references) == {"bleu": pytest.approx(expected)}
    assert 0 < expected < 100
    perfect = recipe.live_quality([answer(r).model_dump() for r in references], references)
    assert perfect == {"bleu": pytest.approx(100.0)}


def test_too_few_rows_give_no_bleu(recipe) -> None:
    assert recipe.live_quality([], []) == {}
    few = [answer("a house").model_dump()] * (MIN_BLEU_ROWS - 1)
    assert recipe.live_quality(few, ["a house"] * (MIN_BLEU_ROWS - 1)) == {}


def test_feedback_is_a_reference_translation_but_no_training_row_yet(recipe) -> None:
    assert recipe.feedback_type is str and recipe.log_request_body is True
    with pytest.raises(UsageError):
        recipe.feedback_frame([{"text": "Hej"}], ["Hello"])
