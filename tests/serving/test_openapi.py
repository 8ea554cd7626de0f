"""The OpenAPI keeps its promises: every error a route answers is documented with the JSON
error shape, and every documented request example is a request the live server accepts."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from opsline.serving.app import create_app
from opsline.serving.openapi import ErrorResponse, OIPError

from .conftest import stub_client
from .recipe_servers import (
    KEY,
    fuzz_settings,
    house_price_url,
    image_classification_url,
    text_generation_url,
    tiny_generation_recipe,
    translation_url,
)

__all__ = ["house_price_url", "image_classification_url", "text_generation_url", "translation_url"]
JSON = {"content-type": "application/json"}
ERROR_SCHEMAS = {"#/components/schemas/ErrorResponse", "#/components/schemas/OIPError"}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield path, method.upper(), operation


def _house_spec() -> dict[str, Any]:
    spec: dict[str, Any] = create_app(fuzz_settings("house_price")).openapi()
    return spec


def test_every_error_response_has_the_json_error_shape() -> None:
    spec = _house_spec()
    checked = 0
    for path, method, operation in _operations(spec):
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            if path.startswith("/v2/") and code == "422":
                continue  # FastAPI's own entry for path parameters; OIP answers 400 instead
            if path == "/admin/reload" and code == "409":
                assert schema["$ref"].endswith("/ReloadResult")  # the refused attempt itself
                continue
            assert schema.get("$ref") in ERROR_SCHEMAS, (method, path, code, schema)
            checked += 1
    assert checked > 60
    assert "ErrorResponse" in spec["components"]["schemas"]


@pytest.mark.parametrize(
    "method, path, codes",
    [
        ("POST", "/predict", {"400", "413", "415", "422", "503"}),
        ("POST", "/predict/batch", {"400", "413", "415", "422", "503"}),
        ("POST", "/feedback", {"400", "401", "404", "413", "415", "422", "503"}),
        ("POST", "/jobs/train", {"400", "401", "413", "415", "422", "429", "503"}),
        ("DELETE", "/jobs/{job_id}", {"401", "404", "409", "422", "503"}),
        ("POST", "/v2/models/{model_name}/infer", {"400", "404", "413", "422", "503"}),
        ("POST", "/admin/reload", {"401", "409", "422", "503"}),
        ("GET", "/ready", {"503"}),
    ],
)
def test_routes_document_the_codes_they_answer(method: str, path: str, codes: set[str]) -> None:
    documented = set(_house_spec()["paths"][path][method.lower()]["responses"])
    assert documented - {"200", "202"} == codes


def _documented(client: TestClient, method: str, path: str, code: int) -> bool:
    return str(code) in client.app.openapi()["paths"][path][method.lower()]["responses"]  # type: ignore[attr-defined]


def test_each_refusal_is_answered_as_documented(stub_model_dir: Path) -> None:
    cases = [  # (request, status, documented route)
        (("POST", "/predict", b'{"x": "\xff"}', JSON), 400, "/predict"),  # not UTF-8
        (("POST", "/predict", b'{"x": 1}', {"content-type": "text/plain"}), 415, "/predict"),
        (("POST", "/predict", b'{"x": 1}', {}), 415, "/predict"),
        (("POST", "/predict", b'{"x": 1, "label": "' + b"a" * 300 + b'"}', JSON), 413, "/predict"),
        (("POST", "/predict", b'{"x": true}', JSON), 422, "/predict"),
        (("POST", "/feedback", b'{"request_id": "a", "actual": 1}', JSON), 401, "/feedback"),
        (("GET", "/jobs/nope", b"", {"X-API-Key": KEY}), 404, "/jobs/{job_id}"),
    ]
    with stub_client(str(stub_model_dir), max_body_bytes=200, api_key=KEY) as client:
        for (method, url, body, headers), status, route in cases:
            response = client.request(method, url, content=body, headers=headers)
            assert response.status_code == status, (url, response.text)
            ErrorResponse.model_validate(response.json())
            assert _documented(client, method, route, status)
        too_large = client.post("/v2/models/stub/infer", content=b"[" + b" " * 300 + b"]")
        assert too_large.status_code == 413 and OIPError.model_validate(too_large.json())
    with stub_client(None) as client:  # no model: 503 on /predict, documented
        response = client.post("/predict", json={"x": 1})
        assert response.status_code == 503 and ErrorResponse.model_validate(response.json())


# -- every example is a valid request --------------------------------------------------------
def _examples(spec: dict[str, Any], operation: dict[str, Any]) -> list[Any]:
    """The operation's JSON body examples: named ones, and the body schema's own list."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    found = [example["value"] for example in content.get("examples", {}).values()]
    ref = content.get("schema", {}).get("$ref", "")
    if ref:
        schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        found += schema.get("examples", [])
    return found


def _post_every_example(url: str, model_name: str) -> int:
    """POST each body example of the live server's OpenAPI to its route; all must be 200."""
    spec = httpx.get(f"{url}/openapi.json").json()
    headers = {"X-API-Key": KEY}
    posted = 0
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        first_predict = _examples(spec, spec["paths"]["/predict"]["post"])[0]
        for path, method, operation in _operations(spec):
            if path.startswith("/jobs"):
                continue  # starting jobs: see test_job_examples_are_accepted
            for example in _examples(spec, operation):
                if path == "/feedback":  # feedback needs its prediction logged first
                    for item in example if isinstance(example, list) else [example]:
                        seeded = client.post(
                            "/predict",
                            json=first_predict,
                            headers={"X-Request-ID": item["request_id"]},
                        )
                        assert seeded.status_code == 200, seeded.text
                target = path.replace("{model_name}", model_name)
                if "{model_version}" in target:
                    version = client.get("/model").json()["version"]
                    if version is None:  # a model served from a directory has no version
                        continue
                    target = target.replace("{model_version}", version)
                response = client.request(method, target, json=copy.deepcopy(example))
                assert response.status_code == 200, (method, target, example, response.text)
                posted += 1
    return posted


def test_house_price_examples_are_accepted(house_price_url: str) -> None:
    assert _post_every_example(house_price_url, "house_price") >= 8


def test_translation_examples_are_accepted(translation_url: str) -> None:
    assert _post_every_example(translation_url, "translation") >= 5


def test_text_generation_examples_are_accepted(text_generation_url: str) -> None:
    assert _post_every_example(text_generation_url, "text_generation") >= 5


def test_image_classification_examples_are_accepted(image_classification_url: str) -> None:
    assert _post_every_example(image_classification_url, "grapevine") >= 4


def test_job_examples_are_accepted(isolated_home: Path) -> None:
    """Each /jobs example starts a job (202); it is cancelled at once (its worker stopped)."""
    app = create_app(fuzz_settings("house_price", max_jobs=10))
    spec = app.openapi()
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        started = 0
        for path in ("/jobs/train", "/jobs/evaluate"):
            for example in _examples(spec, spec["paths"][path]["post"]):
                response = client.post(path, json=example)
                assert response.status_code == 202, (path, example, response.text)
                cancelled = client.delete(f"/jobs/{response.json()['id']}")
                assert cancelled.status_code in (202, 409), cancelled.text  # 409: already over
                started += 1
        assert started >= 3


def test_the_text_generation_recipe_documents_its_stream_errors_as_json() -> None:
    spec = create_app(
        fuzz_settings("text_generation", model_uri="/nonexistent"), recipe=tiny_generation_recipe()
    ).openapi()
    responses = spec["paths"]["/predict/stream"]["post"]["responses"]
    assert "text/event-stream" in responses["200"]["content"]
    assert all(
        set(responses[code]["content"]) == {"application/json"}
        for code in responses
        if code != "200"
    )
