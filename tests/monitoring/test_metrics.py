"""ServingMetrics and MetricsMiddleware, on a tiny app (no recipe, no model)."""

from __future__ import annotations

import math

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from opsline.monitoring.metrics import MetricsMiddleware, ServingMetrics


def samples(metrics: ServingMetrics) -> dict[tuple[str, tuple], float]:
    """Parsed exposition: (sample name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_each_instance_has_its_own_registry() -> None:
    a, b = ServingMetrics(), ServingMetrics()  # would raise "Duplicated timeseries" if shared
    a.observe_inference(0.01, 3)
    assert samples(a)[("opsline_inference_batch_size_count", ())] == 1
    assert samples(b)[("opsline_inference_batch_size_count", ())] == 0


class WithValue(BaseModel):
    price: float

    @property
    def predicted_value(self) -> float:
        return self.price


class WithoutValue(BaseModel):
    label: str


def test_predicted_values_observed_from_property_and_bad_values_skipped() -> None:
    m = ServingMetrics(value_buckets=(10, 100))
    m.observe_predictions(
        [
            WithValue(price=5),
            WithValue(price=50),
            WithValue(price=math.nan),
            WithValue(price=math.inf),
            WithoutValue(label="x"),
        ]
    )
    s = samples(m)
    assert s[("opsline_predicted_value_count", ())] == 2
    assert s[("opsline_predicted_value_sum", ())] == 55
    assert s[("opsline_predicted_value_bucket", (("le", "10.0"),))] == 1
    assert s[("opsline_predicted_value_bucket", (("le", "100.0"),))] == 2


def test_model_info_replaced_and_cleared() -> None:
    m = ServingMetrics()
    m.set_model("house_price", "1", "production", "gbm")
    m.set_model("house_price", "2", "production", "mlp")
    s = samples(m)
    info = {k: v for k, v in s.items() if k[0] == "opsline_model_info"}
    assert info == {
        (
            "opsline_model_info",
            (("alias", "production"), ("kind", "mlp"), ("name", "house_price"), ("version", "2")),
        ): 1
    }
    assert s[("opsline_model_loaded", ())] == 1
    m.clear_model()
    s = samples(m)
    assert not [k for k in s if k[0] == "opsline_model_info"]
    assert s[("opsline_model_loaded", ())] == 0


@pytest.fixture
def app_and_metrics() -> tuple[TestClient, ServingMetrics]:
    metrics = ServingMetrics()
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return TestClient(app, raise_server_exceptions=False), metrics


def test_middleware_labels_route_templates_status_and_errors(app_and_metrics) -> None:
    client, metrics = app_and_metrics
    for i in range(3):
        assert client.get(f"/items/{i}").status_code == 200
    assert client.get("/items/not-a-number").status_code == 422
    assert client.get("/nowhere/at/all").status_code == 404
    assert client.get("/boom").status_code == 500
    assert client.get("/openapi.json").status_code == 200  # a plain Starlette route
    s = samples(metrics)

    def count(route: str, status: str) -> float:
        return s.get(
            (
                "opsline_http_requests_total",
                (("method", "GET"), ("route", route), ("status", status)),
            ),
            0,
        )

    assert count("/items/{item_id}", "200") == 3  # the template, not three raw paths
    assert count("/items/{item_id}", "422") == 1
    assert count("unmatched", "404") == 1
    assert count("/boom", "500") == 1
    assert count("/openapi.json", "200") == 1
    assert (
        s[
            (
                "opsline_http_request_duration_seconds_count",
                (("method", "GET"), ("route", "/items/{item_id}")),
            )
        ]
        == 4
    )
