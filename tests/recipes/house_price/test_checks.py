"""checks(): the schema accepts the real splits and names the column of each corruption."""

from __future__ import annotations

import pandera.errors
import pytest

from opsline.data.dataset import write_dataset
from opsline.data.validation import validate_dataset


@pytest.fixture(scope="module")
def checks(recipe, cfg):
    return recipe.checks(cfg)


def failures(schema, frame) -> set[tuple[str, str]]:
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases
        return {(str(c), str(k)) for c, k in zip(cases.column, cases.check, strict=True)}
    return set()


def test_real_splits_pass(checks, splits):
    assert checks.key == "pid"
    for name, frame in splits.items():
        assert failures(checks.schema, frame) == set(), name
        assert len(frame) >= checks.min_rows[name]


@pytest.mark.parametrize(
    ("column", "value", "check_word"),
    [
        ("sale_price", -1000, "positive"),
        ("overall_qual", 11, "in_range"),
        ("neighborhood", None, "not_nullable"),
        ("gr_liv_area", None, "not_nullable"),
        ("lot_area", -5, "greater_than_or_equal_to"),
        ("year_built", 1492, "in_range"),
        ("kitchen_qual", "Great", "isin"),
    ],
)
def test_corruption_is_reported_with_its_column(checks, splits, column, value, check_word):
    frame = splits["train"].copy()
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    found = failures(checks.schema, frame)
    assert any(c == column and check_word in k for c, k in found), found


def test_runner_reports_a_sale_in_two_splits(checks, splits, tmp_path):
    leaked = dict(splits)
    leaked["test"] = splits["test"].copy()
    leaked["test"].loc[0, "pid"] = splits["train"].pid.iloc[0]
    result = validate_dataset(write_dataset(leaked, tmp_path, "house_price"), checks)
    assert not result.ok
    assert any(f.column == "pid" and "also present" in f.check for f in result.failures)


def test_min_rows_are_configurable(recipe, compose_config):
    cfg = compose_config("recipe.data.min_rows.train=50")
    assert recipe.checks(cfg).min_rows["train"] == 50
