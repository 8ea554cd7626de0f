"""Clean raw sentence pairs and split them deterministically, leak-free by Danish sentence.

Rules, in order: Unicode NFC + whitespace normalisation, gettext menu accelerators removed
(``_Open`` -> ``Open``), empty sides dropped, length limits (characters and words on both
sides), a length-ratio filter (a 5-character sentence "translated" by 60 characters is a
misalignment, not a translation), identical sides dropped (untranslated catalog entries),
exact duplicates dropped (first attribution kept).

The split hashes a normalised form of the Danish sentence, so every translation of one
Danish sentence lands in the same split and the split of a pair never depends on what
else is in the file (adding data does not move existing pairs between splits).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DEFAULTS = {
    "max_chars": 200,
    "max_words": 40,
    "max_ratio": 3.0,
    "ratio_min_chars": 10,
    "val_fraction": 0.04,
    "test_fraction": 0.06,
    "split_seed": 42,
}
_SPACE = re.compile(r"\s+")
# "_Open", "&Save": a single accelerator marker before a letter (not "a_b" identifiers).
_ACCELERATOR = re.compile(r"(?<![\w&_])[_&](?=\w)")


def normalize_text(text: Any) -> str:
    """NFC, every run of whitespace (incl. no-break spaces, newlines) -> one space, stripped."""
    if not isinstance(text, str):
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def strip_accelerators(text: str) -> str:
    """Remove gettext/GTK mnemonic markers: ``"_Åbn fil"`` -> ``"Åbn fil"``."""
    return _ACCELERATOR.sub("", text)


def split_key(da: str) -> str:
    """The grouping key of a Danish sentence: case- and whitespace-insensitive."""
    return normalize_text(da).casefold()


def split_fraction(da: str, seed: int) -> float:
    """A stable number in [0, 1) for a Danish sentence (sha1 of seed + key)."""
    digest = hashlib.sha1(f"{seed}\x00{split_key(da)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _param(data_cfg: Any, name: str) -> Any:
    value = data_cfg.get(name) if data_cfg is not None else None
    return DEFAULTS[name] if value is None else value


def clean(frame: pd.DataFrame, data_cfg: Any = None) -> pd.DataFrame:
    """Apply the cleaning rules; returns a new frame with a fresh index."""
    max_chars, max_words = int(_param(data_cfg, "max_chars")), int(_param(data_cfg, "max_words"))
    max_ratio = float(_param(data_cfg, "max_ratio"))
    ratio_min = int(_param(data_cfg, "ratio_min_chars"))
    out = frame.copy()
    for side in ("da", "en"):
        out[side] = out[side].map(normalize_text)
        if "origin" in out.columns:
            gettext = out["origin"] == "gettext"
            out.loc[gettext, side] = out.loc[gettext, side].map(strip_accelerators)
    out["attribution"] = out["attribution"].map(normalize_text)
    keep = (out["da"] != "") & (out["en"] != "")
    for side in ("da", "en"):
        keep &= out[side].str.len() <= max_chars
        keep &= out[side].str.split().str.len() <= max_words
    da_len, en_len = out["da"].str.len(), out["en"].str.len()
    short = (da_len < ratio_min) & (en_len < ratio_min)
    ratio = da_len.combine(en_len, max) / da_len.combine(en_len, min).clip(lower=1)
    keep &= short | (ratio <= max_ratio)
    keep &= out["da"].str.casefold() != out["en"].str.casefold()
    out = out[keep].drop_duplicates(subset=["da", "en"], keep="first")
    return out.reset_index(drop=True)


def subset(frame: pd.DataFrame, max_pairs: int | None, seed: int = 42) -> pd.DataFrame:
    """At most ``max_pairs`` pairs, whole Danish groups at a time, chosen by hash (stable)."""
    if not max_pairs or len(frame) <= max_pairs:
        return frame
    order = frame["da"].map(lambda da: split_fraction(da, seed + 1))
    return frame.loc[order.sort_values(kind="stable").index[: int(max_pairs)]].sort_index()


def split(frame: pd.DataFrame, data_cfg: Any = None) -> dict[str, pd.DataFrame]:
    """train / val / test by the hash of the Danish sentence (never in two splits)."""
    seed = int(_param(data_cfg, "split_seed"))
    val, test = float(_param(data_cfg, "val_fraction")), float(_param(data_cfg, "test_fraction"))
    if not (val > 0 and test > 0 and val + test < 1):
        raise ValueError(
            "recipe.data val_fraction and test_fraction must be > 0 and sum to less than 1"
        )
    u = frame["da"].map(lambda da: split_fraction(da, seed))
    parts = {"test": u < test, "val": (u >= test) & (u < test + val), "train": u >= test + val}
    return {
        name: frame[mask].reset_index(drop=True)
        for name, mask in (
            ("train", parts["train"]),
            ("val", parts["val"]),
            ("test", parts["test"]),
        )
    }


def prepare(cfg: Any) -> dict[str, pd.DataFrame]:
    """Load ``recipe.data.source``, clean, optionally subset, split."""
    from opsline.errors import NoDatasetError
    from opsline.recipes.translation.sources import load_pairs

    data_cfg = cfg.recipe.data
    frame = clean(load_pairs(data_cfg), data_cfg)
    frame = subset(frame, data_cfg.get("max_pairs"), int(_param(data_cfg, "split_seed")))
    if frame.empty:
        raise NoDatasetError(
            f"No sentence pairs left after cleaning the {data_cfg.get('source')!r} data."
        )
    return split(frame, data_cfg)
