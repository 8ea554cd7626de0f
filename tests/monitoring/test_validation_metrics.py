"""Validation results as metrics: written by pipeline.validate, shown by the server."""

from __future__ import annotations

from opsline import pipeline
from opsline.monitoring.metrics import ServingMetrics
from opsline.monitoring.textfile import metrics_path, read_samples

MIN_ROWS = "(dataframe): min_rows"


def check(samples: dict, split: str, name: str, outcome: str) -> float | None:
    labels = (("check", name), ("model", "house_price"), ("outcome", outcome), ("split", split))
    return samples.get(("opsline_data_validation_checks", labels))


def test_failing_then_passing_validation_is_counted() -> None:
    pipeline.prepare("house_price")
    path = metrics_path("validation", "house_price")

    failing = pipeline.validate("house_price", ["recipe.data.min_rows.train=100000"])
    assert not failing.ok
    s = read_samples(path)
    assert s[("opsline_data_validation_failed_checks", (("model", "house_price"),))] == 1
    assert check(s, "train", MIN_ROWS, "failed") == 1
    assert check(s, "train", MIN_ROWS, "passed") is None
    assert check(s, "val", MIN_ROWS, "passed") == 1
    # Every rule of the schema is listed as passed, e.g. the target's positivity check.
    assert check(s, "train", "sale_price: sale price must be positive", "passed") == 1
    assert check(s, "test", "pid: unique_across_splits", "passed") == 1

    assert pipeline.validate("house_price").ok
    s = read_samples(path)
    assert s[("opsline_data_validation_failed_checks", (("model", "house_price"),))] == 0
    assert check(s, "train", MIN_ROWS, "passed") == 1
    assert not [
        k for k in s if ("outcome", "failed") in k[1] and k[0] == "opsline_data_validation_checks"
    ]
    # The run counter is carried across runs (each run is its own process in real life).
    runs = {
        dict(k[1])["outcome"]: v
        for k, v in s.items()
        if k[0] == "opsline_data_validation_runs_total"
    }
    assert runs == {"passed": 1, "failed": 1}

    served = ServingMetrics().render().decode()
    assert 'opsline_data_validation_failed_checks{model="house_price"} 0.0' in served
    assert 'opsline_data_validation_runs_total{model="house_price",outcome="failed"} 1.0' in served


class FrameSet:
    """Stands in for a prepared Dataset: the runner only needs frames() and version."""

    version = "0" * 40

    def __init__(self, **frames):
        self._frames = frames

    def frames(self):
        return self._frames


def test_row_bounds_get_stable_labels_from_the_real_runner(tmp_path) -> None:
    import pandas as pd
    import pandera.pandas as pa

    from opsline.data.validation import Checks, validate_dataset
    from opsline.monitoring.validation import record_validation

    checks = Checks(
        pa.DataFrameSchema({"x": pa.Column(int, pa.Check.ge(0))}),
        min_rows={"train": 5},
        max_rows={"val": 1},
    )
    frames = FrameSet(train=pd.DataFrame({"x": [1, 2]}), val=pd.DataFrame({"x": [1, -2]}))
    result = validate_dataset(frames, checks)
    s = read_samples(record_validation("m", result, checks, path=tmp_path / "v.prom"))
    failed = {
        (dict(k[1])["split"], dict(k[1])["check"])
        for k in s
        if k[0] == "opsline_data_validation_checks" and ("outcome", "failed") in k[1]
    }
    # The row counts are in the runner's wording, never in the labels.
    assert failed == {
        ("train", "(dataframe): min_rows"),
        ("val", "(dataframe): max_rows"),
        ("val", "x: greater_than_or_equal_to(0)"),
    }
    cases = {
        dict(k[1])["check"]: v
        for k, v in s.items()
        if k[0] == "opsline_data_validation_failure_cases" and ("split", "val") in k[1]
    }
    assert cases["x: greater_than_or_equal_to(0)"] == 1
    assert s[("opsline_data_validation_failed_checks", (("model", "m"),))] == 3
