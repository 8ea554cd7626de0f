"""Validation stops bad data: swapped languages, empty sides, duplicates, too few rows."""

from __future__ import annotations

from opsline.data.dataset import write_dataset
from opsline.data.validation import validate_dataset
from opsline.recipes.translation.checks import checks


def validate(splits, cfg, tmp_path):
    dataset = write_dataset(splits, tmp_path / "data", "translation")
    return validate_dataset(dataset, checks(cfg))


def test_prepared_tatoeba_passes(tatoeba_splits, compose, tmp_path):
    result = validate(tatoeba_splits, compose(), tmp_path)
    assert result.ok, result.report()


def test_swapped_languages_fail_naming_both_columns(tatoeba_splits, compose, tmp_path):
    swapped = {k: v.rename(columns={"da": "en", "en": "da"}) for k, v in tatoeba_splits.items()}
    result = validate(swapped, compose(), tmp_path)
    assert not result.ok
    report = result.report()
    assert "should look Danish" in report and "should look English" in report
    assert {f.column for f in result.failures} >= {"da", "en"}


def test_empty_side_and_duplicates_are_reported(tatoeba_splits, compose, tmp_path):
    splits = dict(tatoeba_splits)
    train = splits["train"].copy()
    train.loc[3, "en"] = ""
    train.loc[4] = train.loc[5]
    splits["train"] = train
    result = validate(splits, compose(), tmp_path)
    report = result.report()
    assert not result.ok
    assert "[train] column 'en': non-empty text" in report
    assert "no duplicate (da, en) pair" in report


def test_too_few_rows_and_leaks_fail(tatoeba_splits, compose, tmp_path):
    splits = dict(tatoeba_splits)
    splits["val"] = splits["val"].head(5)
    splits["test"] = __import__("pandas").concat([splits["test"], splits["train"].head(2)])
    result = validate(splits, compose(), tmp_path)
    report = result.report()
    assert "has 5 rows, needs at least 100" in report
    assert "records also present in split 'train'" in report
