"""The real app serving a translation model: JSON endpoints, 422s naming the field, the UI."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings


@pytest.fixture(scope="module")
def client(tiny_model_dir):
    app = create_app(ServingSettings(recipe="translation", model_uri=str(tiny_model_dir), ui=False))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_predict_and_batch(client):
    response = client.post("/predict", json={"text": "Hej med dig."})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"translation", "num_beams", "truncated"}
    assert body["num_beams"] == 1 and body["truncated"] is False
    batch = client.post(
        "/predict/batch",
        json={
            "items": [
                {"text": "Hej."},
                {"text": "Tak for mad.", "num_beams": 2, "max_new_tokens": 8},
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    assert [item["num_beams"] for item in batch.json()["items"]] == [1, 2]
    assert client.get("/model").json()["predictor"]["kind"] == "marian"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"text": ""}, "text"),
        ({"text": "   \n "}, "text"),
        ({"text": "x" * 1001}, "text"),
        ({"text": 42}, "text"),
        ({"text": ["Hej"]}, "text"),
        ({}, "text"),
        ({"text": "Hej", "num_beams": 0}, "num_beams"),
        ({"text": "Hej", "num_beams": 9}, "num_beams"),
        ({"text": "Hej", "max_new_tokens": 0}, "max_new_tokens"),
        ({"text": "Hej", "max_new_tokens": 257}, "max_new_tokens"),
        ({"text": "Hej", "temperature": 0.7}, "temperature"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, body, field):
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(loc[-1] == field for loc in locations), locations


def test_bad_batch_item_names_its_index(client):
    response = client.post("/predict/batch", json={"items": [{"text": "Hej"}, {"text": ""}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-3:] == ["items", 1, "text"]


def test_unloadable_model_keeps_the_app_up_and_says_why(tmp_path):
    (tmp_path / "opsline_model.json").write_text('{"recipe": "translation", "kind": "marian"}')
    app = create_app(ServingSettings(recipe="translation", model_uri=str(tmp_path), ui=False))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert test_client.get("/health").status_code == 200
        ready = test_client.get("/ready")
        assert ready.status_code == 503 and "incomplete" in ready.json()["detail"]


def test_ui_form_has_the_text_elements(tiny_model_dir):
    from opsline.recipes.translation.predictor import TranslationPredictor
    from opsline.recipes.translation.ui import build_ui, translate_from_form

    predictor = TranslationPredictor.load(tiny_model_dir)
    ids = {
        c.get("props", {}).get("elem_id") for c in build_ui(predictor.predict).config["components"]
    }
    assert {
        "translate-input",
        "translate-beams",
        "translate-button",
        "translation-output",
        "translation-message",
    } <= ids
    text, message = translate_from_form(predictor.predict, "Hej.", 2)
    assert isinstance(text, str) and "beam search (2)" in message
    text, message = translate_from_form(predictor.predict, "  ", 1)
    assert text == "" and "**text**" in message
