"""The real path: house_price recipe, model resolved from the registry (``@production``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsline.recipes.registry import get_recipe

from .test_app import JSON, metric


@pytest.fixture(scope="module")
def samples() -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in get_recipe("house_price").sample_requests()]


def price_of(response: dict[str, Any]) -> float:
    """The predicted price, whatever the response calls the field it is in."""
    Response = get_recipe("house_price").Response
    return Response.model_validate(response).predicted_value


# -- no model registered ------------------------------------------------------------------
def test_without_a_model_the_app_starts_and_says_how_to_train(empty: TestClient, samples) -> None:
    assert empty.get("/health").json() == {"status": "ok"}
    ready = empty.get("/ready")
    assert ready.status_code == 503
    assert "opsline run house_price" in ready.json()["detail"]
    for r in (
        empty.post("/predict", json=samples[0]),
        empty.post("/predict/batch", json={"items": samples[:2]}),
        empty.get("/model"),
    ):
        assert r.status_code == 503
        assert "opsline run house_price" in r.json()["detail"]
    assert metric(empty, "opsline_model_loaded") == 0


# -- trained and promoted model ----------------------------------------------------------
def test_ready_and_model_lineage(served: TestClient) -> None:
    ready = served.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model"] == "house_price" and ready.json()["version"]
    info = served.get("/model").json()
    assert info["name"] == "house_price"
    assert info["version"] == ready.json()["version"]
    assert info["alias"] == "production"
    assert info["uri"] == "models:/house_price@production"
    assert info["run_id"] and info["data_version"]
    assert info["kind"] == "gbm"
    assert {"test_rmse", "test_rmsle"} <= set(info["metrics"])  # recorded at registration
    assert all(math.isfinite(v) for v in info["metrics"].values())


def test_predict_one(served: TestClient, samples) -> None:
    r = served.post("/predict", json=samples[0])
    assert r.status_code == 200, r.text
    assert price_of(r.json()) > 0


def test_batch_of_three_matches_single_predictions_in_order(served: TestClient, samples) -> None:
    # Same house, three sizes: different prices, so a shuffled answer would show.
    items = [{**samples[0], "gr_liv_area": area} for area in (1000, 3000, 2000)]
    r = served.post("/predict/batch", json={"items": items})
    assert r.status_code == 200, r.text
    batch = [price_of(x) for x in r.json()["items"]]
    singles = [price_of(served.post("/predict", json=item).json()) for item in items]
    assert len(batch) == 3
    assert batch == pytest.approx(singles, rel=1e-6)


@pytest.mark.parametrize("size, reason", [(0, "at least 1"), (1001, "at most 1000")])
def test_batch_size_limits(served: TestClient, samples, size: int, reason: str) -> None:
    r = served.post("/predict/batch", json={"items": [samples[0]] * size})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "items"] and reason in error["msg"]


@pytest.mark.parametrize(
    "field, raw",
    [
        ("gr_liv_area", "NaN"),
        ("gr_liv_area", "Infinity"),
        ("gr_liv_area", "-Infinity"),
        ("gr_liv_area", '"big"'),
        ("gr_liv_area", "-5"),
        ("overall_qual", "0"),
        ("overall_qual", "11"),
        ("overall_qual", '"excellent"'),
        ("neighborhood", "42"),
    ],
)
def test_invalid_field_is_422_naming_it(served: TestClient, samples, field: str, raw: str) -> None:
    import json

    body = json.dumps({**samples[0], field: "__RAW__"}).replace('"__RAW__"', raw)
    r = served.post("/predict", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert [e for e in r.json()["detail"] if e["loc"][:2] == ["body", field] and e["msg"]]


def test_malformed_json_is_422(served: TestClient) -> None:
    r = served.post("/predict", content='{"gr_liv_area": 1500,', headers=JSON)
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_metrics_after_a_prediction(served: TestClient, samples) -> None:
    price = price_of(served.post("/predict", json=samples[0]).json())
    served.post("/predict/batch", json={"items": []})
    version = served.get("/model").json()["version"]
    assert (
        metric(served, "opsline_http_requests_total", route="/predict", method="POST", status="200")
        == 1
    )
    assert metric(served, "opsline_http_requests_total", route="/predict/batch", status="422") == 1
    assert (
        metric(served, "opsline_http_request_duration_seconds_bucket", route="/predict", le="+Inf")
        == 1
    )
    assert metric(served, "opsline_inference_duration_seconds_count") == 1
    assert metric(served, "opsline_inference_batch_size_sum") == 1
    assert (
        metric(
            served,
            "opsline_model_info",
            name="house_price",
            version=version,
            alias="production",
            kind="gbm",
        )
        == 1
    )
    assert metric(served, "opsline_predicted_value_count") == 1
    assert metric(served, "opsline_predicted_value_sum") == pytest.approx(price)


def test_openapi_shows_the_recipe_schemas(served: TestClient) -> None:
    spec = served.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    Request = get_recipe("house_price").Request
    assert Request.__name__ in schemas
    assert "gr_liv_area" in schemas[Request.__name__]["properties"]
    assert "HousePriceBatchRequest" in schemas


def test_ui_page_is_served(trained_workspace: Path) -> None:
    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings

    with TestClient(create_app(ServingSettings())) as client:
        page = client.get("/ui/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
