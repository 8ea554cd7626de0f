"""Server behaviour over the stand-in recipe: routing, errors, limits, metrics (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from opsline.serving.settings import ServingSettings

from .conftest import stub_client

JSON = {"content-type": "application/json"}


def metric(client: TestClient, sample: str, **labels: str) -> float:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_predict_and_batch_keep_order(stub: TestClient) -> None:
    assert stub.post("/predict", json={"x": 3}).json() == {"y": 6.0}
    r = stub.post("/predict/batch", json={"items": [{"x": 3}, {"x": 1}, {"x": 2}]})
    assert r.status_code == 200
    assert r.json() == {"items": [{"y": 6.0}, {"y": 2.0}, {"y": 4.0}]}


@pytest.mark.parametrize("items, reason", [([], "at least 1"), ([{"x": 1}] * 6, "at most 5")])
def test_batch_size_limits(stub: TestClient, items: list, reason: str) -> None:
    r = stub.post("/predict/batch", json={"items": items})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "items"] and reason in error["msg"]


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"x": NaN}', "x"),
        ('{"x": Infinity}', "x"),
        ('{"x": -Infinity}', "x"),
        ('{"x": 1e400}', "x"),  # overflows to inf while parsing
        ('{"x": "abc"}', "x"),
        ('{"x": 101}', "x"),
        ('{"x": -1}', "x"),
        ("{}", "x"),
        ('{"x": 1, "extra": 2}', "extra"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(stub: TestClient, raw: str, field: str) -> None:
    r = stub.post("/predict", content=raw, headers=JSON)
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == field and e["msg"] for e in r.json()["detail"]), r.json()


def test_invalid_item_in_batch_names_its_index(stub: TestClient) -> None:
    r = stub.post("/predict/batch", content='{"items": [{"x": 1}, {"x": NaN}]}', headers=JSON)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "items", 1, "x"]


@pytest.mark.parametrize("raw", ['{"x": ', "not json", ""])
def test_malformed_json_is_422(stub: TestClient, raw: str) -> None:
    r = stub.post("/predict", content=raw, headers=JSON)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"


def test_oversized_body_is_413(stub_model_dir: Path) -> None:
    with stub_client(str(stub_model_dir), max_body_bytes=100) as client:
        assert client.post("/predict", json={"x": 1}).status_code == 200
        r = client.post("/predict/batch", json={"items": [{"x": 1}] * 20})
        assert r.status_code == 413  # JSON, saying the limit, before the body is parsed
        assert "limit is 100 bytes" in r.json()["detail"]


def test_unexpected_error_is_generic_json_500(stub: TestClient, caplog) -> None:
    r = stub.post("/predict", json={"x": 13})  # the stub predictor raises on 13
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal server error; the server log has details."}
    assert "unlucky input" not in r.text
    assert any(
        "unlucky input" in (rec.exc_text or str(rec.exc_info))
        for rec in caplog.records
        if rec.levelname == "ERROR"
    )
    assert metric(stub, "opsline_inference_errors_total") == 1
    assert metric(stub, "opsline_http_requests_total", route="/predict", status="500") == 1


def test_metrics_after_predictions(stub: TestClient) -> None:
    stub.post("/predict", json={"x": 3})
    stub.post("/predict/batch", json={"items": [{"x": 1}, {"x": 40}]})
    stub.post("/predict/batch", json={"items": []})
    assert (
        metric(stub, "opsline_http_requests_total", route="/predict", method="POST", status="200")
        == 1
    )
    assert metric(stub, "opsline_http_requests_total", route="/predict/batch", status="422") == 1
    assert metric(stub, "opsline_inference_batch_size_count") == 2
    assert metric(stub, "opsline_inference_batch_size_sum") == 3
    assert metric(stub, "opsline_inference_duration_seconds_count") == 2
    # predicted values 6, 2, 80 with the stub recipe's buckets (1, 10, 100, 1000)
    assert metric(stub, "opsline_predicted_value_bucket", le="10.0") == 2
    assert metric(stub, "opsline_predicted_value_bucket", le="100.0") == 3
    assert metric(stub, "opsline_predicted_value_sum") == 88
    assert metric(stub, "opsline_model_info", name="stub", kind="linear") == 1
    assert metric(stub, "opsline_model_loaded") == 1
    text = stub.get("/metrics").text
    assert (
        'opsline_http_request_duration_seconds_bucket{le="0.005",method="POST",'
        'route="/predict"}' in text
    )
    assert stub.get("/metrics").headers["content-type"].startswith("text/plain")


def test_openapi_uses_recipe_schemas(stub: TestClient) -> None:
    spec = stub.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/StubRequest")
    ok = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/StubResponse")
    items = spec["components"]["schemas"]["StubBatchRequest"]["properties"]["items"]
    assert items["maxItems"] == 5 and items["minItems"] == 1
    assert stub.get("/docs").status_code == 200


def test_unloadable_model_dir_starts_unready(tmp_path: Path) -> None:
    with stub_client(str(tmp_path)) as client:  # an empty directory: no stub.json
        assert client.get("/health").status_code == 200
        r = client.get("/ready")
        assert r.status_code == 503 and "no stub.json" in r.json()["detail"]
        assert "opsline run stub" in r.json()["detail"]
        assert client.post("/predict", json={"x": 1}).status_code == 503
        assert client.get("/model").status_code == 503
        assert metric(client, "opsline_model_loaded") == 0


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLINE_MODEL_URI", "models:/house_price/3")
    monkeypatch.setenv("OPSLINE_PORT", "9100")
    monkeypatch.setenv("OPSLINE_MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("OPSLINE_UI", "false")
    s = ServingSettings()
    assert (s.recipe, s.resolved_model_uri, s.port, s.max_batch_size, s.ui) == (
        "house_price",
        "models:/house_price/3",
        9100,
        64,
        False,
    )
    monkeypatch.delenv("OPSLINE_MODEL_URI")
    assert ServingSettings(recipe="x").resolved_model_uri == "models:/x@production"


def test_importing_settings_stays_light() -> None:
    code = (
        "import sys, opsline.serving, opsline.serving.settings; "
        "heavy = {'torch', 'gradio', 'mlflow', 'fastapi'} & set(sys.modules); "
        "print(json.dumps(sorted(heavy)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_ui_is_mounted_and_uses_the_loaded_model(stub_model_dir: Path) -> None:
    with stub_client(str(stub_model_dir), ui=True) as client:
        page = client.get("/ui/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
        assert metric(client, "opsline_http_requests_total", route="/ui", status="200") >= 1
