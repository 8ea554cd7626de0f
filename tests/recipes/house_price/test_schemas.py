"""Request schema: bad input is rejected naming the field; partial input is accepted."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from opsline.recipes.house_price.features import RAW_COLUMNS
from opsline.recipes.house_price.schemas import (
    TYPICAL_HOUSE,
    HousePriceRequest,
    HousePriceResponse,
)

MINIMAL = {"neighborhood": "NAmes", "gr_liv_area": 1500, "overall_qual": 6, "year_built": 1970}


def error_fields(**changes) -> set[str]:
    with pytest.raises(ValidationError) as info:
        HousePriceRequest(**{**MINIMAL, **changes})
    return {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(value):
    assert "gr_liv_area" in error_fields(gr_liv_area=value)
    assert "total_bsmt_sf" in error_fields(total_bsmt_sf=value)


def test_nan_in_json_is_rejected():
    with pytest.raises(ValidationError) as info:
        HousePriceRequest.model_validate_json(
            '{"neighborhood": "NAmes", "gr_liv_area": NaN, "overall_qual": 6, "year_built": 1970}'
        )
    assert info.value.errors()[0]["loc"] == ("gr_liv_area",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("overall_qual", 11),
        ("overall_qual", 0),
        ("gr_liv_area", 50),
        ("year_built", 1500),
        ("garage_cars", -1),
        ("lot_area", 10),
        ("mo_sold", 13),
    ],
)
def test_out_of_range_is_rejected(field, value):
    assert field in error_fields(**{field: value})


def test_unknown_codes_and_fields_are_rejected():
    assert "neighborhood" in error_fields(neighborhood="Atlantis")
    assert "kitchen_qual" in error_fields(kitchen_qual="Great")
    assert "swimming_pool" in error_fields(swimming_pool=True)


def test_required_fields_are_named_when_missing():
    with pytest.raises(ValidationError) as info:
        HousePriceRequest(neighborhood="NAmes")
    missing = {e["loc"][0] for e in info.value.errors() if e["type"] == "missing"}
    assert missing == {"gr_liv_area", "overall_qual", "year_built"}


def test_remodel_before_construction_is_rejected():
    with pytest.raises(ValidationError, match="year_remod_add"):
        HousePriceRequest(**MINIMAL, year_remod_add=1950)


def test_partial_request_is_accepted_and_records_only_given_fields():
    request = HousePriceRequest(**MINIMAL, garage_cars=2)
    assert request.record() == {**MINIMAL, "garage_cars": 2}


def test_every_request_field_is_a_model_column():
    assert set(HousePriceRequest.model_fields) <= set(RAW_COLUMNS)


def test_examples_are_valid():
    schema = HousePriceRequest.model_json_schema()
    for example in schema["examples"]:
        HousePriceRequest(**example)
    HousePriceRequest(**TYPICAL_HOUSE)
    response = HousePriceResponse.model_json_schema()["examples"][0]
    HousePriceResponse(**response)
