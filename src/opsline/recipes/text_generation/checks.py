"""Validation rules for the prepared passages (a pandera schema + the core's split rules).

The reference's Great-Expectations suite, plus two rules it lacked. Per split (schema):

* ``has_clean_text`` — the ``clean_text`` column exists;
* ``not_null`` / ``is_string`` — every value is present and is text;
* ``length`` — between ``min_chars`` and ``max_chars_check`` characters (1–2048);
* ``unique`` — no passage twice in a split, ignoring case, punctuation and spacing;
* ``english`` — at least ``min_language_share`` of the passages read as English (a
  passage with no telling word counts as not English, so text in another script fails
  rather than passing as "undecided"); when the share is too low the non-English passages
  are the failure cases the report shows.

Across splits (the core runner): ``min_rows`` / ``max_rows_check`` per split, and no
``clean_text`` in two splits (``Checks.key``). Every check has a name and a readable
message; the report and the Prometheus counters use them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opsline.data.validation import Checks
from opsline.recipes.text_generation.corpus import (
    DEFAULTS,
    HARD_MAX_CHARS,
    fingerprint,
    planned_rows,
)
from opsline.recipes.translation.language import scores

TEXT = "clean_text"
KEY = TEXT
DEFAULT_MIN_ROWS = {"train": 100, "val": 10, "test": 10}
# Far above any real corpus here (Shakespeare is ~6,000 passages): a count past these means
# the chunking broke (e.g. one row per line), not that the data grew.
DEFAULT_MAX_ROWS = {"train": 1_000_000, "val": 100_000, "test": 100_000}
DEFAULT_MIN_LANGUAGE_SHARE = 0.8


def is_english(text: Any) -> bool:
    """More English than Danish function words (``translation.language``'s word lists);
    no telling word at all is *not* English."""
    if not isinstance(text, str):
        return False
    da, en = scores(text)
    return en > da


def english_share(texts: Iterable[Any]) -> float:
    """Share of ``texts`` that :func:`is_english` (1.0 for no texts)."""
    flags = [is_english(t) for t in texts]
    return sum(flags) / len(flags) if flags else 1.0


def build_schema(
    min_chars: int = 1,
    max_chars: int = HARD_MAX_CHARS,
    min_language_share: float = DEFAULT_MIN_LANGUAGE_SHARE,
) -> Any:
    """The pandera ``DataFrameSchema`` every split must satisfy.

    Each violation is reported by exactly one check: a null is only ``not_null``, a number
    only ``is_string`` (the other checks let what is not text pass).
    """
    import pandera.pandas as pa

    def length_ok(series: Any) -> Any:
        return series.map(lambda v: not isinstance(v, str) or min_chars <= len(v) <= max_chars)

    def first_copy(series: Any) -> Any:
        return ~series.map(lambda v: fingerprint(v) if isinstance(v, str) else v).duplicated(
            keep="first"
        )

    def english(series: Any) -> Any:
        # Only non-empty text is judged (nulls, numbers and "" belong to the checks above).
        judged = series.map(lambda v: isinstance(v, str) and bool(v.strip()))
        flags = series.map(is_english)
        share = flags[judged].mean() if judged.any() else 1.0
        # Below the share, name the passages that are not English; above it, all pass.
        return flags | ~judged if share < min_language_share else judged | True

    checks = [
        pa.Check(lambda s: s.notna(), ignore_na=False, name="not_null", error="text is not null"),
        pa.Check(
            lambda v: isinstance(v, str),
            element_wise=True,
            name="is_string",
            error="text is a string",
        ),
        pa.Check(length_ok, name="length", error=f"text has {min_chars} to {max_chars} characters"),
        pa.Check(
            first_copy,
            name="unique",
            error="no duplicate text in the split (ignoring case, punctuation, spacing)",
        ),
        pa.Check(
            english,
            name="english",
            error=f"at least {min_language_share:.0%} of the texts read as English",
        ),
    ]
    # nullable/required are handled by named checks instead of pandera's built-ins, whose
    # names ("not_nullable", "column_in_dataframe") would be the report's wording.
    return pa.DataFrameSchema(
        {TEXT: pa.Column(None, checks, nullable=True, required=False, name=TEXT)},
        checks=[
            pa.Check(
                lambda df: TEXT in df.columns,
                name="has_clean_text",
                error=f"a {TEXT!r} column exists",
            )
        ],
        strict=False,
        name="text_generation",
    )


def _bounds(data: Any, name: str, defaults: dict[str, int]) -> dict[str, int]:
    bounds = dict(defaults)
    if data.get(name):
        bounds.update({str(k): int(v) for k, v in data[name].items()})
    return bounds


def checks(cfg: Any) -> Checks:
    """Schema, record key and per-split row bounds from ``recipe.data``.

    With ``recipe.data.max_rows`` (a deliberately small subset) the minimum row counts are
    capped at what that subset can hold, so a quick run is not failed for being small.
    """
    data = cfg.recipe.data

    def get(name: str, default: Any) -> Any:
        value = data.get(name)
        return default if value is None else value

    min_rows = _bounds(data, "min_rows", DEFAULT_MIN_ROWS)
    if data.get("max_rows") is not None:
        plan = planned_rows(
            int(data.max_rows),
            float(get("val_fraction", DEFAULTS["val_fraction"])),
            float(get("test_fraction", DEFAULTS["test_fraction"])),
        )
        min_rows = {k: min(v, plan.get(k, v)) for k, v in min_rows.items()}
    schema = build_schema(
        int(get("min_chars", 1)),
        int(get("max_chars_check", HARD_MAX_CHARS)),
        float(get("min_language_share", DEFAULT_MIN_LANGUAGE_SHARE)),
    )
    return Checks(
        schema=schema,
        key=KEY,
        min_rows=min_rows,
        max_rows=_bounds(data, "max_rows_check", DEFAULT_MAX_ROWS),
    )
