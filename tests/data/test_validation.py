"""The validation runner: pandera failures, row minimums and leaks become one report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from opsline.data.dataset import write_dataset
from opsline.data.validation import Checks, validate_dataset

SCHEMA = pa.DataFrameSchema({"id": pa.Column(int), "price": pa.Column(float, pa.Check.gt(0))})


def _write(tmp_path: Path, train: pd.DataFrame, test_ids: list[int]):
    frames = {
        "train": train,
        "val": pd.DataFrame({"id": [100], "price": [1.0]}),
        "test": pd.DataFrame({"id": test_ids, "price": [1.0] * len(test_ids)}),
    }
    return write_dataset(frames, tmp_path / "ds", "demo")


def test_clean_data_passes(tmp_path: Path) -> None:
    dataset = _write(tmp_path, pd.DataFrame({"id": [1, 2], "price": [3.0, 4.0]}), [200])
    result = validate_dataset(dataset, Checks(SCHEMA, key="id"))
    assert result.ok
    assert "all checks passed" in result.report()


def test_report_names_split_column_check_and_row(tmp_path: Path) -> None:
    train = pd.DataFrame({"id": [1, 2, 3], "price": [3.0, -4.0, 5.0]})
    dataset = _write(tmp_path, train, [200])
    report = validate_dataset(dataset, Checks(SCHEMA, key="id")).report()
    assert "[train] column 'price'" in report
    assert "greater_than(0)" in report
    assert "row 1" in report and "-4.0" in report


def test_leak_between_splits_is_reported(tmp_path: Path) -> None:
    dataset = _write(tmp_path, pd.DataFrame({"id": [1, 2], "price": [3.0, 4.0]}), [2, 300])
    result = validate_dataset(dataset, Checks(SCHEMA, key="id"))
    assert not result.ok
    assert "also present in split 'train'" in result.report()
    assert "id=2" in result.report()


def test_minimum_rows(tmp_path: Path) -> None:
    dataset = _write(tmp_path, pd.DataFrame({"id": [1, 2], "price": [3.0, 4.0]}), [200])
    result = validate_dataset(dataset, Checks(SCHEMA, min_rows={"train": 10}))
    assert "has 2 rows, needs at least 10" in result.report()
