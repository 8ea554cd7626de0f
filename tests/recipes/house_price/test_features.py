"""Preprocessing: fitted on train only, JSON round trip, imputation as in training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from opsline.recipes.house_price.features import (
    NUMERIC_FEATURES,
    PREPROCESSING_FILE,
    RAW_COLUMNS,
    Preprocessor,
)


@pytest.fixture(scope="module")
def pre(splits):
    return Preprocessor.fit(splits["train"])


def test_json_round_trip_gives_identical_inputs(pre, splits, tmp_path):
    pre.save(tmp_path)
    text = (tmp_path / PREPROCESSING_FILE).read_text()
    assert json.loads(text)  # plain JSON, no pickle
    loaded = Preprocessor.load(tmp_path)
    assert loaded.to_dict() == pre.to_dict()
    np.testing.assert_array_equal(loaded.matrix(splits["test"]), pre.matrix(splits["test"]))
    pd.testing.assert_frame_equal(loaded.gbm_frame(splits["test"]), pre.gbm_frame(splits["test"]))


@pytest.mark.parametrize("kind", ["mlp", "gbm"])
def test_exported_preprocessing_is_fitted_on_train_only(request, kind, dataset):
    model_dir = request.getfixturevalue(f"{kind}_trained")[0].model_dir
    exported = Preprocessor.load(model_dir).to_dict()
    train = dataset.frame("train")
    assert exported == Preprocessor.fit(train).to_dict()
    with_val = Preprocessor.fit(pd.concat([train, dataset.frame("val")])).to_dict()
    assert exported["medians"] != with_val["medians"]
    assert exported["medians"]["gr_liv_area"] == float(train.gr_liv_area.median())
    assert exported["target_mean"] == pytest.approx(np.log(train.sale_price).mean())


def test_standardized_on_train_and_no_missing_values(pre, splits):
    train = pre.matrix(splits["train"])
    numeric = train[:, : len(NUMERIC_FEATURES)]
    np.testing.assert_allclose(numeric.mean(axis=0), 0, atol=1e-4)
    assert np.isfinite(pre.matrix(splits["test"])).all()
    assert train.shape[1] == len(pre.features)


def test_unseen_category_is_encoded_as_all_zeros(pre, splits):
    row = splits["test"].head(1).copy()
    row["neighborhood"] = "Atlantis"
    columns = [i for i, f in enumerate(pre.features) if f.startswith("neighborhood=")]
    assert pre.matrix(row)[0, columns].sum() == 0
    assert pre.gbm_frame(row)["neighborhood"].isna().all()


def test_absent_fields_get_train_defaults(pre):
    completed = pre.complete([{"gr_liv_area": 2000, "neighborhood": "CollgCr"}])
    assert list(completed.columns) == RAW_COLUMNS
    row = completed.iloc[0]
    assert row.gr_liv_area == 2000 and row.neighborhood == "CollgCr"
    assert row.lot_area == pre.defaults["lot_area"]
    assert row.garage_type == pre.defaults["garage_type"] == "Attchd"
    assert row.alley == "NA"  # the typical house has no alley access
    # An explicit None means "unknown": imputed like an absent field.
    again = pre.complete([{"gr_liv_area": 2000, "neighborhood": "CollgCr", "lot_area": None}])
    assert again.iloc[0].lot_area == pre.defaults["lot_area"]


def test_target_round_trip(pre):
    prices = np.array([50_000.0, 181_500.0, 600_000.0])
    np.testing.assert_allclose(pre.decode_target(pre.encode_target(prices)), prices)
