"""Strict request types: true is not a number, "1" is not a number, NaN/±inf are refused,
an integer is a valid float (JSON has one number type); each refusal is a 422 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from opsline.recipes.house_price.schemas import TYPICAL_HOUSE, HousePriceRequest
from opsline.recipes.image_classification.schemas import EXAMPLE_IMAGE, ImageRequest
from opsline.recipes.text_generation.schemas import GenerationRequest
from opsline.recipes.translation.schemas import TranslationRequest
from opsline.serving.oip_schema import tensors_of

from .conftest import stub_client

KEY = "strict-key"
# One valid request per served recipe; each numeric field is then replaced in turn.
BASES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (HousePriceRequest, TYPICAL_HOUSE),
    (TranslationRequest, {"text": "Hej med dig."}),
    (GenerationRequest, {"prompt": "To be, or not"}),
    (ImageRequest, {"image": EXAMPLE_IMAGE}),
]
NUMERIC = [
    (model, base, tensor.name, tensor.kind)
    for model, base in BASES
    for tensor in tensors_of(model)
    if tensor.kind in ("int", "float")
]
NOT_NUMBERS = ["true", "false", '"1"', '"1.5"', "[1]", '{"v": 1}']


def _refused_fields(model: type[BaseModel], body: dict[str, Any], raw: str, field: str) -> Any:
    text = json.dumps({k: v for k, v in body.items() if k != field})
    text = text[:-1] + (", " if len(text) > 2 else "") + f'"{field}": {raw}}}'
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(text)
    return caught.value.errors()


@pytest.mark.parametrize("raw", NOT_NUMBERS)
@pytest.mark.parametrize(
    "model, base, field, kind", NUMERIC, ids=[f"{m.__name__}.{f}" for m, _, f, _ in NUMERIC]
)
def test_every_numeric_field_refuses_what_is_not_a_number(
    model: type[BaseModel], base: dict[str, Any], field: str, kind: str, raw: str
) -> None:
    errors = _refused_fields(model, base, raw, field)
    assert [e["loc"] for e in errors] == [(field,)], errors
    assert errors[0]["type"] in ("int_type", "float_type")


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(
    "model, base, field",
    [(m, b, f) for m, b, f, k in NUMERIC if k == "float"],
    ids=[f"{m.__name__}.{f}" for m, _, f, k in NUMERIC if k == "float"],
)
def test_float_fields_refuse_nan_and_infinity(
    model: type[BaseModel], base: dict[str, Any], field: str, raw: str
) -> None:
    errors = _refused_fields(model, base, raw, field)
    assert [(e["loc"], e["type"]) for e in errors] == [((field,), "finite_number")]


def test_an_integer_is_a_valid_float_and_a_whole_float_is_not_an_int() -> None:
    house = HousePriceRequest.model_validate_json(
        json.dumps({**TYPICAL_HOUSE, "gr_liv_area": 1442})
    )
    assert house.gr_liv_area == 1442.0 and isinstance(house.gr_liv_area, float)
    generation = GenerationRequest.model_validate_json('{"prompt": "x", "temperature": 1}')
    assert generation.temperature == 1.0
    with pytest.raises(ValidationError, match="overall_qual"):
        HousePriceRequest.model_validate_json(json.dumps({**TYPICAL_HOUSE, "overall_qual": 6.0}))


# -- over HTTP ------------------------------------------------------------------------------
@pytest.fixture
def stub(stub_model_dir: Path) -> Iterator[TestClient]:
    with stub_client(str(stub_model_dir), api_key=KEY) as client:
        yield client


def _detail(response: Any) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(e["loc"], e["type"]) for e in response.json()["detail"]]


@pytest.mark.parametrize("value", [True, "1", [1]])
def test_predict_and_batch_name_the_field(stub: TestClient, value: Any) -> None:
    assert _detail(stub.post("/predict", json={"x": value})) == [(["body", "x"], "float_type")]
    batch = stub.post("/predict/batch", json={"items": [{"x": 1}, {"x": value}]})
    assert _detail(batch) == [(["body", "items", 1, "x"], "float_type")]


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_predict_refuses_nan_and_infinity(stub: TestClient, raw: str) -> None:
    response = stub.post(
        "/predict", content=f'{{"x": {raw}}}', headers={"content-type": "application/json"}
    )
    assert _detail(response) == [(["body", "x"], "finite_number")]


def test_predict_takes_an_integer_for_a_float(stub: TestClient) -> None:
    assert stub.post("/predict", json={"x": 2}).json() == {"y": 4.0}


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"request_id": "a", "actual": "1"}, ["body", "actual"]),
        ({"request_id": "a", "actual": True}, ["body", "actual"]),
        (
            [{"request_id": "a", "actual": 1}, {"request_id": "b", "actual": "1"}],
            ["body", 1, "actual"],
        ),
        ({"request_id": 5, "actual": 1.0}, ["body", "request_id"]),
    ],
)
def test_feedback_names_the_field_once(stub: TestClient, body: Any, loc: list[Any]) -> None:
    response = stub.post("/feedback", json=body, headers={"X-API-Key": KEY})
    assert [error[0] for error in _detail(response)] == [loc]


def test_feedback_refuses_nan_and_takes_an_integer(stub: TestClient) -> None:
    headers = {"X-API-Key": KEY, "content-type": "application/json"}
    nan = stub.post("/feedback", content='{"request_id": "a", "actual": NaN}', headers=headers)
    assert _detail(nan) == [(["body", "actual"], "finite_number")]
    assert (
        stub.post("/predict", json={"x": 1}, headers={"X-Request-ID": "fb-int"}).status_code == 200
    )
    stored = stub.post("/feedback", json={"request_id": "fb-int", "actual": 3}, headers=headers)
    assert stored.status_code == 200 and stored.json()["created"] == 1


@pytest.mark.parametrize("shape", ["[true]", '["1"]', "[1.0]"])
def test_oip_shape_must_be_integers(stub: TestClient, shape: str) -> None:
    body = f'{{"inputs": [{{"name": "x", "datatype": "FP64", "shape": {shape}, "data": [1.0]}}]}}'
    response = stub.post("/v2/models/stub/infer", content=body)
    assert response.status_code == 400 and "inputs.0.shape.0" in response.json()["error"]


@pytest.mark.parametrize(
    "body, loc",
    [({"recipe": 5}, ["body", "recipe"]), ({"overrides": [1]}, ["body", "overrides", 0])],
)
def test_job_requests_are_strict(stub: TestClient, body: Any, loc: list[Any]) -> None:
    response = stub.post("/jobs/train", json=body, headers={"X-API-Key": KEY})
    assert [error[0] for error in _detail(response)] == [loc]
