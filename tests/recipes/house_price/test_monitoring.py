"""Monitoring hooks of the house-price recipe: drift features, reference requests, live
quality against reported sale prices, and feedback rows that train like prepared rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from opsline.recipes.house_price import sample_requests
from opsline.recipes.house_price.schemas import HousePriceRequest


def test_features_are_every_request_field_as_sent(recipe) -> None:
    typical, small, large = sample_requests()
    rows = recipe.monitored_features([typical, small, large], [])
    assert [list(row) for row in rows] == [list(HousePriceRequest.model_fields)] * 3
    assert rows[2]["gr_liv_area"] == 2650.0 > rows[0]["gr_liv_area"] == 1442.0
    assert isinstance(rows[0]["overall_qual"], float) and rows[0]["overall_qual"] == 6.0
    assert rows[1]["neighborhood"] == "OldTown" and rows[1]["central_air"] == "N"
    assert rows[0]["fireplaces"] is None and rows[0]["garage_type"] is None  # not sent


def test_requests_from_the_test_split_predict_and_keep_their_values(
    recipe, splits, gbm_predictor
) -> None:
    frame = splits["test"]
    requests = recipe.requests_from_frame(frame)
    assert len(requests) == len(frame)
    prices = np.array([r.predicted_price for r in gbm_predictor.predict(requests)])
    assert np.isfinite(prices).all() and (prices > 0).all()
    features = pd.DataFrame(recipe.monitored_features(requests, []))
    assert (features["gr_liv_area"] == frame["gr_liv_area"].astype(float)).all()
    assert (features["neighborhood"] == frame["neighborhood"]).all()
    no_basement = frame["bsmt_qual"].isna()
    assert no_basement.any() and (features.loc[no_basement, "bsmt_qual"] == "NA").all()
    no_frontage = frame["lot_frontage"].isna()
    assert no_frontage.any() and features.loc[no_frontage, "lot_frontage"].isna().all()


def test_a_refused_optional_value_is_left_out_not_the_row(recipe, splits) -> None:
    rows = splits["train"].head(2).copy()
    rows.loc[0, "year_remod_add"] = rows.loc[0, "year_built"] - 5  # remodel before building
    rows.loc[1, "overall_qual"] = 11  # a required field out of range: no request
    requests = recipe.requests_from_frame(rows)
    assert len(requests) == 1 and requests[0].year_remod_add is None
    assert requests[0].gr_liv_area == float(rows.loc[0, "gr_liv_area"])


def test_live_quality_is_the_evaluate_metrics_of_the_scored_rows(recipe) -> None:
    predictions = [
        {"predicted_price": 105_000.0},
        {"predicted_price": 100_000.0},
        {"predicted_price": 90_000.0},
    ]
    quality = recipe.live_quality(predictions, [100_000.0, 125_000.0, -1.0])
    expected = math.sqrt(
        (
            (math.log1p(105_000) - math.log1p(100_000)) ** 2
            + (math.log1p(100_000) - math.log1p(125_000)) ** 2
        )
        / 2
    )
    assert quality == pytest.approx({"rmsle": expected, "within_10pct": 0.5})
    assert recipe.live_quality([], []) == {}
    assert recipe.live_quality(predictions[:1], [0.0]) == {}


def feedback(recipe):
    requests = sample_requests()
    actuals = [185_000.0, 92_500.0, 455_000.0]
    return (
        requests,
        actuals,
        recipe.feedback_frame([r.model_dump(mode="json") for r in requests], actuals),
    )


def test_feedback_rows_look_like_prepared_rows_and_pass_validation(recipe, cfg, splits) -> None:
    train = splits["train"]
    requests, _, frame = feedback(recipe)
    assert list(frame.columns) == list(train.columns)
    assert frame.dtypes.to_dict() == train.dtypes.to_dict()
    assert list(frame["sale_price"]) == [185_000, 92_500, 455_000]
    assert list(frame["gr_liv_area"]) == [r.gr_liv_area for r in requests]
    assert list(frame["neighborhood"]) == ["NAmes", "OldTown", "NridgHt"]
    assert frame["pid"].is_unique and not set(frame["pid"]) & set(train["pid"])
    checks = recipe.checks(cfg)
    checks.schema.validate(pd.concat([train, frame], ignore_index=True))


def test_feedback_rows_give_the_served_prediction_back(recipe, gbm_predictor) -> None:
    # Filled like the served model filled the request, a feedback row is the same house to
    # the model: retraining learns from what was actually predicted.
    requests, _, frame = feedback(recipe)
    served = [r.predicted_price for r in gbm_predictor.predict(requests)]
    assert gbm_predictor.predict_frame(frame) == pytest.approx(served, abs=0.01)  # cents


def test_none_codes_become_missing_like_in_the_data(recipe) -> None:
    request = HousePriceRequest(
        neighborhood="NAmes",
        gr_liv_area=900,
        overall_qual=5,
        year_built=1950,
        bsmt_qual="NA",
        garage_type="NA",
    )
    frame = recipe.feedback_frame([request.model_dump(mode="json")], [120_000])
    assert frame.loc[0, ["bsmt_qual", "garage_type"]].isna().all()


def test_fill_values_are_the_train_defaults(splits) -> None:
    from opsline.recipes.house_price.features import NONE_LEVEL, Preprocessor
    from opsline.recipes.house_price.monitoring import DEFAULTS

    fitted = Preprocessor.fit(splits["train"]).defaults
    fitted = {k: None if v == NONE_LEVEL else v for k, v in fitted.items()}
    fitted["ms_subclass"] = int(fitted["ms_subclass"])  # a code in the model, a number here
    assert fitted == DEFAULTS


def test_the_log_keeps_features_only_and_feedback_rebuilds_the_requests(recipe, tmp_path) -> None:
    # Every request field is a monitored feature, so the recorder stores no second copy of
    # the body; the rows a retrain learns from are the same as from the requests.
    from types import SimpleNamespace

    from opsline.data.feedback import feedback_rows
    from opsline.recipes.house_price.schemas import HousePriceResponse
    from opsline.serving.prediction_recorder import PredictionRecorder
    from opsline.serving.settings import ServingSettings

    uri = f"sqlite:///{tmp_path / 'log.db'}"
    requests, actuals, expected = feedback(recipe)
    recorder = PredictionRecorder(recipe, ServingSettings(prediction_log_uri=uri))
    recorder.open()
    answers = [
        HousePriceResponse(predicted_price=1.0, price_per_sqft=1.0, model_kind="gbm")
        for _ in requests
    ]
    recorder.record(
        SimpleNamespace(name="house_price", version="1"),
        requests,
        answers,
        ["a", "b", "c"],
        [0.001] * 3,
    )
    recorder.log.add_feedback(list(zip(["a", "b", "c"], actuals, strict=True)))
    assert recorder.log.frame("house_price")["request"].isna().all()
    recorder.log.close()
    ids, frame = feedback_rows(recipe, "house_price", uri)
    assert ids == ["a", "b", "c"]
    pd.testing.assert_frame_equal(frame, expected)
