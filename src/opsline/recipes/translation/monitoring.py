"""Monitoring hooks of the translation recipe: drift features and live BLEU.

Per request the prediction log keeps how long the Danish input is (characters, words), how
Danish it reads (:func:`danish_share`) and how long the English output came out (words).
Longer inputs, English pasted into the Danish box, or translations that suddenly get
shorter or longer than their inputs all move one of these. Plain Python, no model and no
download: it runs once per served batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsline.recipes.translation.language import DANISH
from opsline.recipes.translation.schemas import TranslationRequest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.recipes.base import Scalar

FEATURES = ("input_chars", "input_words", "danish_share", "output_words")
#: Fewer scored rows than this give no BLEU: corpus BLEU of a handful of sentences is mostly
#: its brevity penalty and zero n-gram counts, too noisy for a quality signal.
MIN_BLEU_ROWS = 10
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")  # letters (any script), inner apostrophe
_DANISH_LETTERS = frozenset("æøå")


def danish_share(text: str) -> float:
    """Share (0..1) of the words that look Danish: one of the ~150 most frequent Danish
    words that are not also English words (``language.DANISH``), or spelt with æ/ø/å.

    On Tatoeba's Danish sentences the median is 0.5 (90 % between 0.17 and 0.86); on their
    English sides it is 0 for 99.9 %. Text without letters scores 0. Case-insensitive;
    digits and punctuation are not words.
    """
    words = _WORD.findall(text.lower())
    if not words:
        return 0.0
    danish = sum(1 for w in words if w in DANISH or not _DANISH_LETTERS.isdisjoint(w))
    return danish / len(words)


def monitored_features(
    requests: Sequence[TranslationRequest], responses: Sequence[Any]
) -> list[dict[str, Scalar]]:
    """Per request: input characters and words, :func:`danish_share`, output words."""
    return [
        {
            "input_chars": float(len(request.text)),
            "input_words": float(len(request.text.split())),
            "danish_share": danish_share(request.text),
            "output_words": float(len(response.translation.split())),
        }
        for request, response in zip(requests, responses, strict=True)
    ]


def requests_from_frame(frame: pd.DataFrame) -> list[TranslationRequest]:
    """The distinct Danish sentences (``da``) of a prepared split as greedy requests.

    A sentence with several English references is one request (it is translated once, as
    in ``evaluate``). Requests keep the API's defaults (greedy, ``max_new_tokens`` 64), so
    the reference's output lengths are those of default live traffic.
    """
    from pydantic import ValidationError

    requests = []
    for text in dict.fromkeys(frame["da"]):
        try:
            requests.append(TranslationRequest(text=str(text)))
        except ValidationError:
            continue  # longer than the API accepts: live traffic cannot contain it
    return requests


def live_quality(predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]) -> dict[str, float]:
    """``{"bleu"}``: SacreBLEU corpus BLEU (as ``evaluate``) of the logged translations
    against the reference translations sent as feedback; ``{}`` below
    :data:`MIN_BLEU_ROWS` rows."""
    from opsline.recipes.translation.metrics import corpus_scores

    if len(predictions) != len(actuals):
        raise ValueError(f"{len(predictions)} predictions for {len(actuals)} actuals")
    if len(predictions) < MIN_BLEU_ROWS:
        return {}
    scores = corpus_scores([str(p["translation"]) for p in predictions], [str(a) for a in actuals])
    return {"bleu": scores["bleu"]}
