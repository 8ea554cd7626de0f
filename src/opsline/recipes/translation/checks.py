"""Validation rules for the prepared sentence pairs (a pandera schema + cross-split rules).

Per split: both sides non-empty text without surrounding spaces, within the length limits,
a sane length ratio, a non-empty attribution, no duplicate pair, and the sanity check that
the ``da`` column reads as Danish and ``en`` as English (a swapped file fails loudly instead
of training an English -> Danish model). Across splits (by the core runner): minimum rows
per split and no Danish sentence in two splits.
"""

from __future__ import annotations

from typing import Any

from opsline.data.validation import Checks
from opsline.recipes.translation.cleaning import DEFAULTS
from opsline.recipes.translation.language import share

DEFAULT_MIN_ROWS = {"train": 1000, "val": 100, "test": 100}
KEY = "da"


def build_schema(
    max_chars: int = 200,
    max_ratio: float = 3.0,
    ratio_min_chars: int = 10,
    min_language_share: float = 0.8,
) -> Any:
    """The pandera ``DataFrameSchema`` every split must satisfy."""
    import pandera.pandas as pa

    text = pa.Check(
        lambda v: isinstance(v, str) and v != "" and v == v.strip(),
        element_wise=True,
        error="non-empty text without surrounding spaces",
    )
    length = pa.Check.str_length(1, int(max_chars), error=f"between 1 and {max_chars} characters")

    def looks(language: str) -> Any:
        name = {"da": "Danish", "en": "English"}[language]
        return pa.Check(
            lambda s: share(s, language)[0] >= min_language_share,
            error=f"at least {min_language_share:.0%} of the texts with a telling "
            f"word should look {name}",
        )

    def ratio_ok(df: Any) -> Any:
        da, en = df["da"].str.len(), df["en"].str.len()
        short = (da < ratio_min_chars) & (en < ratio_min_chars)
        return short | (da.combine(en, max) / da.combine(en, min).clip(lower=1) <= max_ratio)

    return pa.DataFrameSchema(
        {
            "da": pa.Column(str, [text, length, looks("da")], name="da"),
            "en": pa.Column(str, [text, length, looks("en")], name="en"),
            "attribution": pa.Column(str, text, name="attribution"),
        },
        checks=[
            pa.Check(ratio_ok, error=f"length ratio of the two sides at most {max_ratio}"),
            pa.Check(
                lambda df: ~df.duplicated(subset=["da", "en"], keep="first"),
                error="no duplicate (da, en) pair",
            ),
        ],
        strict=False,
        name="translation",
    )


def checks(cfg: Any) -> Checks:
    """Schema, record key and minimum split sizes (``recipe.data`` overrides the defaults)."""
    data = cfg.recipe.data

    def get(name: str, default: Any) -> Any:
        value = data.get(name)
        return default if value is None else value

    min_rows = dict(DEFAULT_MIN_ROWS)
    if data.get("min_rows"):
        min_rows.update({str(k): int(v) for k, v in data.min_rows.items()})
    schema = build_schema(
        int(get("max_chars", DEFAULTS["max_chars"])),
        float(get("max_ratio", DEFAULTS["max_ratio"])),
        int(get("ratio_min_chars", DEFAULTS["ratio_min_chars"])),
        float(get("min_language_share", 0.8)),
    )
    return Checks(schema=schema, key=KEY, min_rows=min_rows)
