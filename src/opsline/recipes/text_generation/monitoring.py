"""Monitoring hooks of the text-generation recipe: drift features of prompts and outputs.

Per request the prediction log keeps the prompt's length (characters, words), how English
it reads (:func:`english_share`) and how many tokens came back. Prompts in another
language, pasted documents instead of a line to continue, or generations that stop early
all move one of these. Plain Python (no tokenizer, no model): it runs once per request.

The recipe takes no feedback (there is no single right continuation), so there is no live
quality; held-out perplexity at training time is its quality measure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsline.recipes.text_generation.schemas import GenerationRequest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.recipes.base import Scalar

FEATURES = ("input_chars", "input_words", "english_share", "output_tokens")
#: Reference prompts are the opening of a passage, cut to this many characters: about a
#: speaker and a line, like the prompts people type (the UI's example is 57), and with
#: :data:`REFERENCE_NEW_TOKENS` it fits the 64-token context of the recipe's ``tiny`` model.
PROMPT_CHARS = 64
#: Tokens generated per reference prompt: enough to see how generations end, little CPU.
REFERENCE_NEW_TOKENS = 16
TEXT = "clean_text"

# Frequent English words, plus the early-modern forms of the default Shakespeare corpus.
# Words that are also frequent Danish words (i, at, for, to, by, give, have, her, over …)
# are left out, so text in that language does not score as English by accident.
_ENGLISH_WORDS = """the and a of in that is it you he was with on as be his this but
from they we she or an will my me all would there their what so up out if about who get
which go when make can like no just him know take into your good some could them see other
than then now only come its think also back after two how our well way even new want any
these most us are were has had been do does did not very should shall must thou thee thy
thine art hath doth ye o lord sir"""
ENGLISH = frozenset(_ENGLISH_WORDS.split())
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")  # letters (any script), inner apostrophe


def english_share(text: str) -> float:
    """Share (0..1) of the words that are among ~100 frequent English function words
    (modern and Shakespearean; none of them a common Danish word).

    Shakespeare passages score 0.36-0.54 (median 0.45), Tatoeba's English sentences a
    median of 0.4, their Danish sides 0 (99 %); text without letters scores 0.
    Case-insensitive; digits and punctuation are not words.
    """
    words = _WORD.findall(text.lower())
    if not words:
        return 0.0
    return sum(1 for w in words if w in ENGLISH) / len(words)


def monitored_features(
    requests: Sequence[GenerationRequest], responses: Sequence[Any]
) -> list[dict[str, Scalar]]:
    """Per request: prompt characters and words, :func:`english_share`, tokens generated."""
    return [
        {
            "input_chars": float(len(request.prompt)),
            "input_words": float(len(request.prompt.split())),
            "english_share": english_share(request.prompt),
            "output_tokens": float(response.tokens),
        }
        for request, response in zip(requests, responses, strict=True)
    ]


def opening(passage: str, limit: int = PROMPT_CHARS) -> str:
    """The first two lines of a passage (a play's speaker and first line), at most
    ``limit`` characters, cut between words."""
    text = "\n".join(passage.strip().split("\n")[:2])
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(None, 1)[0] if " " in text[: limit + 1] else text[:limit]
    return cut.rstrip()


def requests_from_frame(frame: pd.DataFrame) -> list[GenerationRequest]:
    """Prompts made of each passage's :func:`opening`, with the API's sampling defaults,
    :data:`REFERENCE_NEW_TOKENS` new tokens and a seed per row (a reproducible reference)."""
    requests = []
    for i, passage in enumerate(frame[TEXT]):
        prompt = opening(str(passage))
        if prompt.strip():
            requests.append(
                GenerationRequest(prompt=prompt, seed=i, max_new_tokens=REFERENCE_NEW_TOKENS)
            )
    return requests
