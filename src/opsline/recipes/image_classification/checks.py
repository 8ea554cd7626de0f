"""Validation rules for prepared image datasets (a pandera schema + the core's cross-split rules).

What fails (and so stops training):

* an image that does not decode (``error`` names the file and the reason);
* an image smaller than ``data.min_size`` on either side, or in a mode we do not convert
  (RGBA, greyscale and palette are converted to RGB; 16-bit, float and CMYK are refused);
* a duplicate picture (same pixels) inside a split — and, through the core's ``key`` rule on
  ``pixel_hash``, the same picture in two splits (a leak that inflates test scores);
* a label outside the declared classes, a multi-label value other than 0/1;
* a split without an image of every declared class (``data.require_all_classes``), or
  (if ``data.max_imbalance`` is set) a largest / smallest class ratio above it.

The declared classes are ``data.classes``; a source without a declared list (e.g. a user's
own image folder) gets its label space from the prepared train split's manifest summary.
"""

from __future__ import annotations

from typing import Any

from opsline.data.validation import Checks
from opsline.recipes.image_classification.data import decode_limits, label_space
from opsline.recipes.image_classification.sources import ATTR_PREFIX

KEY = "pixel_hash"


def build_schema(task: str, names: list[str], data_cfg: Any) -> Any:
    """The pandera ``DataFrameSchema`` every split must satisfy."""
    import pandera.pandas as pa

    limits = decode_limits(data_cfg)
    min_size = limits["min_size"]
    binary = "attribute value 0/1 (±1 in the table)"
    # Undecodable rows have width/height 0 and mode "": the error column reports them once.
    big_enough = pa.Check(
        lambda s: (s == 0) | (s >= min_size), error=f"image at least {min_size}×{min_size} pixels"
    )
    columns: dict[str, pa.Column] = {
        "item": pa.Column(str, unique=True, name="item"),
        "error": pa.Column(
            object, pa.Check(lambda s: s.isna(), error="image decodes"), nullable=True, name="error"
        ),
        KEY: pa.Column(
            object, nullable=True, unique=True, name=KEY, report_duplicates="exclude_first"
        ),
        "width": pa.Column("int64", big_enough, name="width"),
        "height": pa.Column("int64", big_enough, name="height"),
        "mode": pa.Column(
            str,
            pa.Check.isin(
                [*limits["modes"], ""], error=f"image mode one of {', '.join(limits['modes'])}"
            ),
            name="mode",
        ),
    }
    checks = []
    if task == "multiclass":
        label_checks = [pa.Check.isin(names, error=f"label one of {names}")] if names else []
        columns["label"] = pa.Column(str, label_checks, name="label")
        if names and data_cfg.get("require_all_classes", True):
            checks.append(
                pa.Check(
                    lambda df: _all_present(df["label"], names),
                    error=f"every declared class has images in the split ({', '.join(names)})",
                )
            )
        ratio = data_cfg.get("max_imbalance")
        if ratio:
            checks.append(
                pa.Check(
                    lambda df: _balance(df["label"]) <= float(ratio),
                    error=f"largest/smallest class at most {ratio}×",
                )
            )
    elif not names:  # undeclared attributes: whatever attr_* columns the table had
        pattern = rf"^{ATTR_PREFIX}.+$"
        columns[pattern] = pa.Column(
            None, pa.Check.isin([0, 1], error=binary), name=pattern, regex=True
        )
    else:
        for name in names:
            columns[ATTR_PREFIX + name] = pa.Column(
                None, pa.Check.isin([0, 1], error=binary), name=ATTR_PREFIX + name
            )
    return pa.DataFrameSchema(columns, checks=checks, strict=False, name="image_classification")


def _all_present(labels: Any, names: list[str]) -> bool:
    return set(names) <= set(labels.dropna().unique())


def _balance(labels: Any) -> float:
    counts = labels.value_counts()
    return float(counts.max() / counts.min()) if len(counts) else 1.0


def checks(cfg: Any) -> Checks:
    """Schema, duplicate key and minimum split sizes (``data.min_rows``)."""
    data_cfg = cfg.data
    min_rows = {"train": 1, "val": 1, "test": 1}
    if data_cfg.get("min_rows"):
        min_rows.update({str(k): int(v) for k, v in data_cfg.min_rows.items()})
    task, names = label_space(cfg, None)
    return Checks(schema=build_schema(task, names, data_cfg), key=KEY, min_rows=min_rows)
