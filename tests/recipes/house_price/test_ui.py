"""The Gradio form: stable element ids, formatted output, readable validation errors."""

from __future__ import annotations

import pytest

from opsline.recipes.house_price.schemas import TYPICAL_HOUSE, HousePriceRequest, HousePriceResponse
from opsline.recipes.house_price.ui import NO_VALUE, predict_from_form


def fake_predict(requests):
    return [
        HousePriceResponse(
            predicted_price=181_500.0, price_per_sqft=181_500.0 / r.gr_liv_area, model_kind="gbm"
        )
        for r in requests
    ]


def form(**changes):
    values = {name: TYPICAL_HOUSE.get(name) for name in HousePriceRequest.model_fields}
    values.update(changes)
    return list(values), list(values.values())


def test_blocks_have_stable_element_ids(recipe):
    import gradio as gr

    demo = recipe.ui(fake_predict)
    assert isinstance(demo, gr.Blocks)
    ids = {c.get("props", {}).get("elem_id") for c in demo.config["components"]}
    assert {
        "predict-button",
        "predicted-price",
        "price-per-sqft",
        "prediction-message",
        "field-neighborhood",
        "field-gr_liv_area",
        "field-overall_qual",
    } <= ids
    assert {f"field-{name}" for name in HousePriceRequest.model_fields} <= ids


def test_defaults_give_a_formatted_price():
    price, per_sqft, message = predict_from_form(fake_predict, *form())
    assert price == "$181,500"
    assert per_sqft == "$126 / sq ft"  # 181,500 / 1,442 sq ft
    assert "gbm" in message


def test_empty_optional_fields_are_imputed_not_errors():
    seen = []
    predict_from_form(
        lambda reqs: seen.extend(reqs) or fake_predict(reqs),
        *form(total_bsmt_sf=None, kitchen_qual=""),
    )
    assert seen[0].total_bsmt_sf is None and seen[0].kitchen_qual is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"gr_liv_area": 20_000}, "gr_liv_area"),
        ({"overall_qual": None}, "overall_qual"),
        ({"year_remod_add": 1900}, "year_remod_add"),
    ],
)
def test_invalid_input_shows_a_message_naming_the_field(changes, field):
    price, per_sqft, message = predict_from_form(fake_predict, *form(**changes))
    assert price == per_sqft == NO_VALUE
    assert field in message


def test_prediction_failure_is_shown_not_raised():
    def broken(requests):
        raise RuntimeError("model not loaded")

    price, _, message = predict_from_form(broken, *form())
    assert price == NO_VALUE and "model not loaded" in message
