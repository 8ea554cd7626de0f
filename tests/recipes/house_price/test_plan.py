"""The compiled request path (FeaturePlan) against the pandas Preprocessor it replaces.

Equality is exact (bit for bit, NaN positions equal), not allclose: the plan performs the
same float64 operations in the same order and casts to float32 at the same point, so any
difference at all means a semantic slip (a wrong default, a skipped clip, a shifted one-hot
column); a tolerance would also let through e.g. a log1p applied to a column that is ~0
in most rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from opsline.recipes.house_price import sample_requests
from opsline.recipes.house_price.features import NOMINAL, NUMERIC_FEATURES, RAW_COLUMNS
from opsline.recipes.house_price.plan import gbm_frame_matrix
from opsline.recipes.house_price.schemas import HousePriceRequest

REQUIRED = {"neighborhood": "NAmes", "gr_liv_area": 1500, "overall_qual": 6, "year_built": 1970}

# Records that exercise each rule of the pandas path (see features.py): numeric category
# codes as text, NaN vs absent, unknown levels, negative areas under clip + log1p, ages
# below zero, numbers given as strings, infinities through nan_to_num, numpy scalars.
EDGE_RECORDS = [
    {**REQUIRED, "ms_subclass": 60},
    {**REQUIRED, "ms_subclass": 60.0, "mas_vnr_type": float("nan")},
    {**REQUIRED, "ms_subclass": "60", "lot_frontage": float("nan"), "alley": None},
    {**REQUIRED, "neighborhood": "Atlantis", "kitchen_qual": "Superb", "bsmt_qual": "NA"},
    {**REQUIRED, "total_bsmt_sf": -50.0, "wood_deck_sf": -10, "yr_sold": 1950},
    {**REQUIRED, "garage_yr_blt": float("nan"), "fence": "MnPrv", "pool_qc": "Ex"},
    {**REQUIRED, "lot_area": "8450", "garage_area": "big", "ms_zoning": 7},
    {
        **REQUIRED,
        "misc_val": float("inf"),
        "overall_qual": np.int64(9),
        "gr_liv_area": np.float64(2100.5),
        "neighborhood": "NridgHt",
    },
    {**REQUIRED, "unknown_field": 3, "second_flr_sf": 0},
]


def pandas_mlp(pre, records):
    return pre.matrix(pre.complete(records))


def pandas_gbm(pre, records):
    return gbm_frame_matrix(pre.gbm_frame(pre.complete(records)))


@pytest.fixture(params=["mlp", "gbm"])
def predictor(request):
    return request.getfixturevalue(f"{request.param}_predictor")


def test_plan_equals_request_path_on_the_whole_test_split(predictor, splits):
    pre, plan = predictor.preprocessor, predictor.plan
    # Gaps as NaN in even rows (imputed: median / "NA") and as None in odd rows (absent:
    # the train default, as complete() does), so both meanings are checked on real rows.
    raw = splits["test"][RAW_COLUMNS].astype(object)
    records = raw.where(raw.notna(), float("nan")).to_dict("records")
    for record in records[1::2]:
        record.update(
            {k: None for k, v in record.items() if isinstance(v, float) and math.isnan(v)}
        )
    assert any(v is None for r in records for v in r.values())
    assert any(isinstance(v, float) and math.isnan(v) for r in records for v in r.values())
    mlp, gbm = plan.mlp_matrix(records), plan.gbm_matrix(records)
    assert mlp.dtype == np.float32 and mlp.shape == (len(records), len(pre.features))
    np.testing.assert_array_equal(mlp, pandas_mlp(pre, records))
    assert gbm.shape == (len(records), len(NUMERIC_FEATURES) + len(NOMINAL))
    np.testing.assert_array_equal(gbm, pandas_gbm(pre, records))


def test_plan_equals_dataset_path_when_missing_values_are_nan(predictor, splits):
    """A data row's gaps as NaN: the plan imputes them as matrix(frame) does (train
    medians, "NA" level), which is how the parity check feeds the test split."""
    pre, plan, test = predictor.preprocessor, predictor.plan, splits["test"]
    raw = test[RAW_COLUMNS].astype(object)
    records = raw.where(raw.notna(), float("nan")).to_dict("records")
    np.testing.assert_array_equal(plan.mlp_matrix(records), pre.matrix(test))
    np.testing.assert_array_equal(plan.gbm_matrix(records), gbm_frame_matrix(pre.gbm_frame(test)))


def test_plan_equals_pandas_on_partial_sample_and_edge_records(predictor):
    pre, plan = predictor.preprocessor, predictor.plan
    records = [REQUIRED] + [r.record() for r in sample_requests()] + EDGE_RECORDS
    np.testing.assert_array_equal(plan.mlp_matrix(records), pandas_mlp(pre, records))
    np.testing.assert_array_equal(plan.gbm_matrix(records), pandas_gbm(pre, records))
    # and one at a time (the server's most common batch)
    for record in records:
        np.testing.assert_array_equal(plan.mlp_matrix([record]), pandas_mlp(pre, [record]))


def test_plan_encodes_categories_as_training_did(gbm_predictor):
    pre, plan = gbm_predictor.preprocessor, gbm_predictor.plan
    gbm = plan.gbm_matrix([{**REQUIRED, "ms_subclass": 60.0}, EDGE_RECORDS[3]])
    col = len(NUMERIC_FEATURES) + NOMINAL.index("neighborhood")
    assert gbm[0, col] == pre.gbm_nominal["neighborhood"].index("NAmes")
    assert np.isnan(gbm[1, col])  # a level training never saw: LightGBM's "missing"
    sub = len(NUMERIC_FEATURES) + NOMINAL.index("ms_subclass")
    assert gbm[0, sub] == pre.gbm_nominal["ms_subclass"].index("60")
    mlp = plan.mlp_matrix([EDGE_RECORDS[3]])
    hot = [
        f
        for f, v in zip(pre.features, mlp[0], strict=True)
        if v == 1.0 and f.startswith("neighborhood=")
    ]
    assert hot == []  # unknown neighborhood: no one-hot column set
    assert mlp[0, pre.features.index("kitchen_qual")] == pytest.approx(
        (0 - pre.means["kitchen_qual"]) / pre.stds["kitchen_qual"]
    )  # unknown ordinal -> 0


def test_plan_handles_an_empty_batch(predictor):
    assert predictor.plan.mlp_matrix([]).shape == (0, predictor.plan.n_features)
    assert predictor.plan.gbm_matrix([]).shape == (0, predictor.plan.n_numeric + len(NOMINAL))


def test_lightgbm_predicts_the_same_from_codes_as_from_pandas_categoricals(gbm_predictor, splits):
    pre, booster = gbm_predictor.preprocessor, gbm_predictor.booster
    records = splits["test"][RAW_COLUMNS].to_dict("records") + EDGE_RECORDS
    frame = pre.gbm_frame(pre.complete(records))
    assert isinstance(frame["neighborhood"].dtype, pd.CategoricalDtype)
    np.testing.assert_array_equal(
        booster.predict(gbm_predictor.plan.gbm_matrix(records)), booster.predict(frame)
    )


def test_requests_do_not_touch_pandas(predictor, monkeypatch):
    from opsline.recipes.house_price.features import Preprocessor

    def refuse(*args, **kwargs):
        raise AssertionError("the request path used the pandas preprocessing")

    for name in ("complete", "base_frame", "matrix", "gbm_frame"):
        monkeypatch.setattr(Preprocessor, name, refuse)
    responses = predictor.predict(sample_requests())
    assert len(responses) == 3 and all(r.predicted_price > 0 for r in responses)


def test_request_prices_equal_predict_frame_on_the_same_rows(predictor, splits):
    fields = HousePriceRequest.model_fields
    requests = [
        # Lax: the frame holds 2.0 for 2 garage cars (the JSON API is strict, rows are not).
        HousePriceRequest.model_validate(
            {k: v for k, v in row.items() if k in fields and pd.notna(v)}, strict=False
        )
        for row in splits["test"].head(64).to_dict("records")
    ]
    requests += [HousePriceRequest(**REQUIRED), *sample_requests()]
    pre = predictor.preprocessor
    via_plan = predictor.to_prices(predictor.forward(predictor.preprocess(requests)))
    via_frame = predictor.predict_frame(pre.complete([r.record() for r in requests]))
    np.testing.assert_array_equal(via_plan, via_frame)
    responses = predictor.predict(requests)
    assert [r.predicted_price for r in responses] == [round(float(p), 2) for p in via_frame]
