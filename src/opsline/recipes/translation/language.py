"""A tiny Danish-vs-English detector for the data sanity check (no model, no download).

Scores are counts of frequent function words plus the Danish letters æ/ø/å. Words that are
common in both languages (``i``, ``at``, ``for``, ``under`` …) are left out, so a sentence
without any telling word is "undecided" rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DANISH_WORDS = """og jeg det er ikke du til som på de med han af der var mig sig et har
om vi min havde ham hun nu fra ud dem os op hvor eller hvad skal selv alle vil blev
kunne ind når være noget ville jo deres efter ned skulle denne dette mit også dig
hende meget sit sine mod disse hvis din nogle hos blive mange bliver hendes været jer
sådan hvorfor hvem kan skal godt lide tror ved vil må gerne kom nej ja tak hej fil filer
kunne ikke mappe vis åbn gem"""
_ENGLISH_WORDS = """the and is you of it that was he this what my me do not are be
with on we they your his she can will don't i'm it's there would could should about from
how why who been has had were does did very want know like think just where when which
their our them then than file files folder show open save cannot could not"""
DANISH = frozenset(_DANISH_WORDS.split())
ENGLISH = frozenset(_ENGLISH_WORDS.split())
_WORD = re.compile(r"[a-zæøåé']+")
_DANISH_LETTERS = re.compile(r"[æøåÆØÅ]")


def scores(text: str) -> tuple[int, int]:
    """(Danish evidence, English evidence) for one text."""
    words = _WORD.findall(text.lower())
    da = sum(w in DANISH for w in words) + 2 * len(_DANISH_LETTERS.findall(text))
    en = sum(w in ENGLISH for w in words)
    return da, en


def share(texts: Iterable[str], language: str) -> tuple[float, int]:
    """Share of decided texts that look like ``language`` ("da"/"en"), and how many decided."""
    right = decided = 0
    for text in texts:
        da, en = scores(str(text))
        if da != en:
            decided += 1
            right += (da > en) == (language == "da")
    return (right / decided if decided else 1.0), decided
