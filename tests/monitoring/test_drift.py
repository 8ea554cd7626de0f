"""Drift detection on synthetic frames: Evidently's verdicts, per-feature tests, windows,
and the reference saved with a model."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from opsline.errors import OpslineError, UsageError
from opsline.monitoring.drift import compute_drift, describe_window, parse_window
from opsline.monitoring.reference import (
    REFERENCE_FILE,
    NoReferenceError,
    build_reference,
    normalize_features,
    read_reference,
    write_reference,
)

CITIES = ["north", "south", "east", "west"]


def houses(
    rows: int,
    seed: int,
    *,
    area_factor: float = 1.0,
    cities: Sequence[float] = (0.25, 0.25, 0.25, 0.25),
) -> pd.DataFrame:
    """Monitored features as the prediction log returns them: floats, strings, Nones."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "area": rng.normal(1500, 300, rows) * area_factor,
            "year": rng.integers(1950, 2010, rows).astype(float),
            "rooms": rng.normal(6, 1.5, rows).round(),
            "city": rng.choice(CITIES, rows, p=list(cities)),
            "pool": [None] * rows,  # an optional field nobody sends
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return houses(1000, seed=0)


def test_same_distribution_is_no_drift(reference: pd.DataFrame) -> None:
    result = compute_drift(reference, houses(400, seed=1), min_rows=100)
    assert result.status == "no_drift" and not result.detected and result.verdict
    assert result.share == 0.0 and result.drifted_features == []
    assert result.rows == 400 and result.reference_rows == 1000
    assert {f.name for f in result.features} == {"area", "year", "rooms", "city"}
    assert result.skipped == ["pool"]  # all None: nothing to test, and no crash
    assert result.message == "no data drift: 0 of 4 features drifted (0%, drift from 50%)"
    assert result.report_html is None  # only when asked for
    assert json.loads(result.report_json)["metrics"]  # Evidently's snapshot


def test_shifted_numeric_and_categorical_features_drift(reference: pd.DataFrame) -> None:
    current = houses(400, seed=2, area_factor=1.8, cities=(0.7, 0.1, 0.1, 0.1))
    result = compute_drift(reference, current, min_rows=100, html=True)
    assert result.status == "drift" and result.detected
    assert result.drifted_features == ["area", "city"]  # drifted first, then by name
    assert result.share == pytest.approx(0.5)
    assert result.message.startswith("data drift: 2 of 4 features drifted (50%")
    assert result.message.endswith("area, city")
    by_name = {f.name: f for f in result.features}
    # Up to 1000 reference rows Evidently tests numbers with K-S, categories with chi-square;
    # both give p-values: drifted when below the threshold.
    assert by_name["area"].method == "K-S p_value"
    assert by_name["city"].method == "chi-square p_value"
    for feature in result.features:
        assert feature.threshold == pytest.approx(0.05)
        assert math.isfinite(feature.score) and 0 <= feature.score <= 1
        assert feature.drifted == (feature.score < feature.threshold)
    assert by_name["area"].score < 1e-6 and by_name["year"].score > 0.05
    assert "<html" in result.report_html.lower()
    summary = result.summary()
    assert summary["has_report"] and "report_html" not in summary
    assert json.dumps(summary)  # JSON-ready


def test_a_stricter_drift_share_flags_one_drifted_feature(reference: pd.DataFrame) -> None:
    current = houses(400, seed=3, area_factor=1.8)
    assert compute_drift(reference, current, min_rows=100).status == "no_drift"
    strict = compute_drift(reference, current, min_rows=100, drift_share=0.25)
    assert strict.status == "drift" and strict.drifted_features == ["area"]


@pytest.mark.parametrize(("features", "needed"), [(1, 1), (2, 2), (4, 2), (8, 3), (33, 5)])
def test_the_default_share_is_what_chance_cannot_explain(features: int, needed: int) -> None:
    from math import comb

    from opsline.monitoring.drift import chance_share

    assert chance_share(features) * features == pytest.approx(needed)

    def by_chance(k: int) -> float:  # P(at least k of n features flagged at p 0.05)
        return sum(
            comb(features, i) * 0.05**i * 0.95 ** (features - i) for i in range(k, features + 1)
        )

    assert by_chance(needed) <= 0.05 and (needed == 1 or by_chance(needed - 1) > 0.05)


def test_many_features_drift_on_a_group_that_chance_would_not_move() -> None:
    """33 features, 5 of them shifted: Evidently's fixed half would say "no drift"."""
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({f"f{i}": rng.normal(0, 1, 1000) for i in range(33)})
    same = pd.DataFrame({f"f{i}": rng.normal(0, 1, 300) for i in range(33)})
    moved = same.copy()
    for i in range(5):
        moved[f"f{i}"] = moved[f"f{i}"] + 1.0
    assert compute_drift(reference, same, min_rows=100).status == "no_drift"
    result = compute_drift(reference, moved, min_rows=100)
    assert result.status == "drift" and len(result.drifted_features) >= 5
    assert result.drift_share == pytest.approx(5 / 33)
    assert compute_drift(reference, moved, min_rows=100, drift_share=0.5).status == "no_drift"


def test_numbers_logged_as_ints_or_strings_still_compare(reference: pd.DataFrame) -> None:
    current = houses(300, seed=4)
    current["year"] = current["year"].astype(int)  # ints in JSON
    current["rooms"] = current["rooms"].astype(object)
    result = compute_drift(reference, current, min_rows=100)
    assert result.status == "no_drift"
    assert {"year", "rooms"} <= {f.name for f in result.features}


@pytest.mark.parametrize("rows", [37, 0])
def test_a_tiny_window_is_not_enough_data(reference: pd.DataFrame, rows: int) -> None:
    current = houses(rows, seed=5) if rows else pd.DataFrame()
    result = compute_drift(reference, current, min_rows=100)
    assert result.status == "not_enough_data" and not result.verdict
    assert result.message == f"not enough data ({rows} of 100 requests)"
    assert result.share is None and result.features == [] and result.report_json is None


def test_no_shared_feature_is_not_enough_data(reference: pd.DataFrame) -> None:
    current = pd.DataFrame({"other": np.arange(200.0), "pool": [None] * 200})
    result = compute_drift(reference, current, min_rows=100)
    assert result.status == "not_enough_data"
    assert "no monitored feature has values in both" in result.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", (1000, None)),
        (" 250 ", (250, None)),
        (5000, (5000, None)),
        ("24h", (None, 1_000_000 - 86_400)),
        ("30m", (None, 1_000_000 - 1_800)),
        ("7d", (None, 1_000_000 - 7 * 86_400)),
        ("90s", (None, 1_000_000 - 90)),
        ("1.5H", (None, 1_000_000 - 5_400)),
    ],
)
def test_parse_window(text: Any, expected: tuple) -> None:
    assert parse_window(text, now=1_000_000) == expected


@pytest.mark.parametrize("text", ["0", "-5", "24x", "h", "", "1000 rows", "1e3"])
def test_a_bad_window_says_which_forms_work(text: str) -> None:
    with pytest.raises(
        UsageError,
        match=r"number of requests \(e\.g\. 1000\) or a time "
        r"span \(e\.g\. 30m, 24h, 7d\)",
    ):
        parse_window(text)


def test_time_windows_default_to_now() -> None:
    _, since = parse_window("1h")
    assert since == pytest.approx(time.time() - 3600, abs=5)
    assert describe_window("1000") == "last 1000 requests"
    assert describe_window("24h") == "last 24h"


# -- the reference ----------------------------------------------------------------------------
class Req:
    def __init__(self, row: dict[str, Any]):
        self.row = row


class FakePredictor:
    max_batch_size = 7

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, requests: list[Req]) -> list[float]:
        self.calls.append(len(requests))
        return [r.row["area"] * 100 for r in requests]


class FakeRecipe:
    name = "fake"
    reference_rows: ClassVar[int] = 50

    def requests_from_frame(self, frame: pd.DataFrame) -> list[Req]:
        return [Req(r) for r in frame.to_dict("records")]

    def monitored_features(
        self, requests: Sequence[Req], responses: Sequence[float]
    ) -> list[dict[str, Any]]:
        return [
            {"area": r.row["area"], "city": r.row["city"], "sold": r.row["area"] > 1500, "price": p}
            for r, p in zip(requests, responses, strict=True)
        ]


class NoReferenceRecipe(FakeRecipe):
    def requests_from_frame(self, frame: pd.DataFrame) -> list[Req]:
        raise NotImplementedError("no reference")


def test_build_reference_samples_predicts_in_chunks_and_is_reproducible() -> None:
    train = houses(300, seed=6)
    predictor = FakePredictor()
    first = build_reference(FakeRecipe(), predictor, train)
    assert len(first) == 50 and list(first.columns) == ["area", "city", "sold", "price"]
    assert max(predictor.calls) <= 7 and sum(predictor.calls) == 50  # predictor's batches
    assert first["price"].tolist() == pytest.approx((first["area"] * 100).tolist())
    assert first["sold"].isin(["True", "False"]).all()  # booleans are categories
    assert first.equals(build_reference(FakeRecipe(), FakePredictor(), train))  # fixed seed
    small = build_reference(FakeRecipe(), FakePredictor(), train.head(20))
    assert len(small) == 20  # fewer train rows than reference_rows: all of them


def test_a_recipe_without_a_reference_gives_none(tmp_path: Path) -> None:
    assert build_reference(NoReferenceRecipe(), FakePredictor(), houses(10, 0)) is None
    said: list[str] = []
    assert (
        write_reference(NoReferenceRecipe(), FakePredictor(), houses(10, 0), tmp_path, said.append)
        is None
    )
    assert not (tmp_path / REFERENCE_FILE).exists()
    assert said == ["No drift reference: recipe 'fake' monitors no features yet."]


def test_the_reference_round_trips_through_parquet(tmp_path: Path) -> None:
    said: list[str] = []
    path = write_reference(FakeRecipe(), FakePredictor(), houses(300, 7), tmp_path, said.append)
    assert path == tmp_path / REFERENCE_FILE and path.is_file()
    assert said == ["Drift reference: 50 train rows, 4 monitored features."]
    back = read_reference(tmp_path, "3")
    assert back.equals(build_reference(FakeRecipe(), FakePredictor(), houses(300, 7)))


def test_a_missing_reference_is_one_sentence_with_exit_code_2(tmp_path: Path) -> None:
    with pytest.raises(NoReferenceError) as caught:
        read_reference(tmp_path, "3")
    assert str(caught.value) == (
        "model version 3 has no drift reference (registered before "
        "drift detection); retrain to add one"
    )
    assert isinstance(caught.value, OpslineError) and caught.value.exit_code == 2


def test_normalize_features_gives_one_type_per_column() -> None:
    frame = pd.DataFrame(
        {
            "n": [1, None, 3],
            "mixed": [1, "a", None],
            "flag": [True, False, True],
            "empty": [None, None, None],
            "f": [1.5, float("nan"), 2.0],
        }
    )
    out = normalize_features(frame)
    assert out["n"].dtype == "float64" and out["f"].dtype == "float64"
    assert out["mixed"].tolist() == ["1", "a", None]
    assert out["flag"].tolist() == ["True", "False", "True"]
    assert out["empty"].tolist() == [None, None, None]
