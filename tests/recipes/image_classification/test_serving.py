"""The served image classifier: uploads and base64 JSON in, top-k out; bad input is a 4xx."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

from .conftest import CLASSES, leaf_bytes, png_bytes
from .test_images import bomb_png


@pytest.fixture
def client(grapevine_workspace: Path) -> Iterator[TestClient]:
    settings = ServingSettings(recipe="image_classification", model_name="grapevine", ui=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def upload(
    client: TestClient, data: bytes, name: str = "leaf.png", ctype: str = "image/png", **fields: str
):
    return client.post("/predict", files={"image": (name, data, ctype)}, data=fields)


def assert_top_k(body: dict, k: int) -> None:
    assert body["task"] == "multiclass" and len(body["labels"]) == k
    probs = [item["probability"] for item in body["labels"]]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
    assert {item["label"] for item in body["labels"]} <= set(CLASSES)
    assert body["predicted"] == [body["labels"][0]["label"]]


def test_serves_the_model_registered_for_the_data_source(client: TestClient) -> None:
    info = client.get("/model").json()
    assert info["name"] == "grapevine" and info["alias"] == "production"
    assert info["predictor"]["classes"] == CLASSES


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_multipart_upload_in_each_format(client: TestClient, fmt: str) -> None:
    with Image.open(io.BytesIO(leaf_bytes("Buzgulu", 3))) as image:
        data = png_bytes(image.convert("RGB") if fmt == "JPEG" else image, fmt)
    response = upload(client, data, f"leaf.{fmt.lower()}", f"image/{fmt.lower()}", top_k="3")
    assert response.status_code == 200, response.text
    assert_top_k(response.json(), 3)


def test_base64_json_and_batch(client: TestClient) -> None:
    b64 = base64.b64encode(leaf_bytes("Nazli", 4)).decode()
    response = client.post("/predict", json={"image": b64, "top_k": 2})
    assert response.status_code == 200, response.text
    assert_top_k(response.json(), 2)
    # A data: URL prefix (what browsers' FileReader produce) is accepted too.
    response = client.post("/predict", json={"image": f"data:image/png;base64,{b64}"})
    assert_top_k(response.json(), 5)
    batch = client.post("/predict/batch", json={"items": [{"image": b64, "top_k": 1}] * 3})
    assert batch.status_code == 200, batch.text
    assert [len(item["labels"]) for item in batch.json()["items"]] == [1, 1, 1]


def _detail(response) -> list[dict]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4 definitely not an image", "not an image"),
        (leaf_bytes("Ak", 2)[:5000], "truncated"),
        (bomb_png(), "decompression bomb"),
    ],
    ids=["not-an-image", "truncated", "bomb"],
)
def test_bad_uploads_are_422_naming_the_field(client: TestClient, data: bytes, reason: str) -> None:
    for response in (
        upload(client, data),
        client.post("/predict", json={"image": base64.b64encode(data).decode()}),
    ):
        assert response.status_code == 422
        (error,) = _detail(response)
        assert error["loc"] == ["body", "image"] and reason in error["msg"]


def test_unsupported_format_is_415(client: TestClient) -> None:
    gif = png_bytes(Image.new("RGB", (64, 64), "green"), "GIF")
    response = upload(client, gif, "leaf.gif", "image/gif")
    assert response.status_code == 415
    assert "GIF" in _detail(response)[0]["msg"]
    response = client.post("/predict", content=b"raw", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and "multipart/form-data" in _detail(response)


def test_more_than_10_mb_is_413_with_the_reason(client: TestClient) -> None:
    response = upload(client, b"\x89PNG" + b"0" * (10 * 1024 * 1024 + 10))
    assert response.status_code == 413
    assert "limit is 10 MB" in _detail(response)


def test_bad_json_and_missing_file_are_422(client: TestClient) -> None:
    assert client.post("/predict", json={"image": "***not base64***"}).status_code == 422
    assert client.post("/predict", json={"top_k": 3}).status_code == 422
    response = client.post(
        "/predict", data={"top_k": "3"}, files={"other": ("x.png", b"123", "image/png")}
    )
    assert response.status_code == 422
    assert _detail(response)[0]["loc"] == ["body", "image"]
    response = upload(client, leaf_bytes("Ak", 1, 96), top_k="0")
    assert response.status_code == 422 and _detail(response)[0]["loc"] == ["body", "top_k"]


def test_openapi_documents_json_and_upload(client: TestClient) -> None:
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
    assert {"application/json", "multipart/form-data"} <= set(body["content"])
