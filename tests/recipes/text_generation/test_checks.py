"""Validation rules: each fails on a frame crafted to break it and all pass on real data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf
from pandera.errors import SchemaErrors

from opsline.config import config_dir
from opsline.data.dataset import write_dataset
from opsline.data.validation import validate_dataset
from opsline.recipes.text_generation.checks import build_schema, checks, english_share
from opsline.recipes.text_generation.corpus import prepare

ENGLISH = [
    f"Speech {i}: what is the matter with you, my lord? I think it was the wind." for i in range(20)
]


def _cfg(**data: object):
    cfg = OmegaConf.load(config_dir() / "data" / "text_generation" / "shakespeare.yaml")
    for key, value in data.items():
        cfg.recipe.data[key] = value
    return cfg


def failed(texts: list[object], **schema_args: object) -> dict[str, list[object]]:
    """Check message -> failing values, for a one-column frame."""
    frame = pd.DataFrame({"clean_text": pd.Series(texts, dtype=object)})
    try:
        build_schema(**schema_args).validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        return {
            c: cases[cases["check"] == c]["failure_case"].tolist() for c in cases["check"].unique()
        }
    return {}


def test_clean_frame_passes() -> None:
    assert failed(ENGLISH) == {}


DUPLICATE = "no duplicate text in the split (ignoring case, punctuation, spacing)"


@pytest.mark.parametrize(
    ("bad", "check"),
    [
        ("", "text has 1 to 2048 characters"),
        ("the " * 600, "text has 1 to 2048 characters"),
        (None, "text is not null"),
        (42, "text is a string"),
        (ENGLISH[3], DUPLICATE),
        (ENGLISH[3].upper() + "!!", DUPLICATE),
    ],
)
def test_each_rule_fails_alone_on_its_violation(bad: object, check: str) -> None:
    assert list(failed([*ENGLISH, bad])) == [check]


def test_length_bounds_are_configurable() -> None:
    assert list(failed(ENGLISH, min_chars=1, max_chars=20)) == ["text has 1 to 20 characters"]


def test_non_english_passages_are_named_when_the_share_is_too_low() -> None:
    danish = ["Jeg er ikke sikker på, hvad du mener med det.", "Hvor er min hund og min kat?"]
    other_script = ["これは英語ではありません。"] * 3
    result = failed([*ENGLISH[:4], *danish, *other_script[:1], "又一句中文。"])
    assert result == {
        "at least 80% of the texts read as English": [*danish, other_script[0], "又一句中文。"]
    }
    # A few non-English passages in a big English corpus are within the share.
    assert failed([*ENGLISH, danish[0]]) == {}
    assert english_share(["The king is dead.", "Le roi est mort."]) == 0.5


def test_missing_column_is_named() -> None:
    with pytest.raises(SchemaErrors) as errors:
        build_schema().validate(pd.DataFrame({"text": ENGLISH}), lazy=True)
    assert errors.value.failure_cases["check"].tolist() == ["a 'clean_text' column exists"]


def test_checks_read_their_bounds_from_config() -> None:
    rules = checks(
        _cfg(
            min_rows={"train": 7, "val": 2, "test": 3},
            max_rows_check={"train": 70, "val": 20, "test": 30},
        )
    )
    assert rules.key == "clean_text"
    assert rules.min_rows == {"train": 7, "val": 2, "test": 3}
    assert rules.max_rows == {"train": 70, "val": 20, "test": 30}
    # A deliberately small subset lowers the minimum to what it can hold.
    assert checks(_cfg(max_rows=100)).min_rows == {"train": 90, "val": 5, "test": 5}


# -- through the core runner, on disk ----------------------------------------------------------
def _validate(tmp_path: Path, splits: dict[str, pd.DataFrame], cfg) -> str:
    dataset = write_dataset(splits, tmp_path / "ds", "text_generation")
    return validate_dataset(dataset, checks(cfg)).report()


def _frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"clean_text": texts})


def test_real_shakespeare_passes_every_check(tmp_path: Path) -> None:
    cfg = _cfg()
    report = _validate(tmp_path, prepare(cfg), cfg)
    assert report.endswith("all checks passed."), report


def test_row_bounds_and_cross_split_duplicates_fail(tmp_path: Path) -> None:
    cfg = _cfg(
        min_rows={"train": 5, "val": 2, "test": 1},
        max_rows_check={"train": 10, "val": 10, "test": 10},
    )
    splits = {
        "train": _frame(ENGLISH[:12]),
        "val": _frame(ENGLISH[12:13]),
        "test": _frame([ENGLISH[0]]),
    }
    report = _validate(tmp_path, splits, cfg)
    assert "[train] column '(dataframe)': has 12 rows, allows at most 10" in report
    assert "[val] column '(dataframe)': has 1 rows, needs at least 2" in report
    assert "[test] column 'clean_text': records also present in split 'train'" in report
    assert "3 check(s) failed" in report
