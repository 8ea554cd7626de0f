"""The recipe contract: every registered recipe walks the whole path on its smoke config.

prepare → validate → train → register → promote → serve → predict, with the real MLflow
store and the real FastAPI app, so a recipe is tested end to end the day it is registered.
"""

from __future__ import annotations

import pytest

from opsline.config import load_config
from opsline.recipes.registry import list_recipes


@pytest.mark.parametrize("recipe_name", list_recipes())
def test_recipe_walks_the_whole_path(recipe_name: str) -> None:
    from fastapi.testclient import TestClient

    from opsline import pipeline
    from opsline.recipes.registry import get_recipe
    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings
    from opsline.tracking.registry import resolve_model

    smoke = list(load_config(recipe_name).recipe.get("smoke_overrides") or [])
    # The registered model's name: the recipe's, or one per data source (image_classification).
    model_name = get_recipe(recipe_name).model_name(load_config(recipe_name, smoke))
    dataset = pipeline.prepare(recipe_name, smoke)
    assert {"train", "val", "test"} <= set(dataset.splits)
    assert pipeline.validate(recipe_name, smoke).ok

    recipe = get_recipe(recipe_name)
    result = pipeline.train(recipe_name, smoke)
    assert f"test_{recipe.primary_metric}" in result.metrics
    decision = pipeline.promote(recipe_name, result.version)
    assert decision.promoted, decision.reason

    ref = resolve_model(recipe_name, f"models:/{model_name}@production")
    assert (ref.version, ref.alias, ref.data_version) == (
        result.version,
        "production",
        dataset.version,
    )

    samples = recipe.sample_requests()
    assert samples, "a recipe must provide sample requests"
    with TestClient(
        create_app(ServingSettings(recipe=recipe_name, model_name=model_name))
    ) as client:
        assert client.get("/ready").status_code == 200
        body = samples[0].model_dump(mode="json")
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        # The server's answer must be a valid Response of the recipe, field for field.
        recipe.Response.model_validate(response.json())
        batch = client.post(
            "/predict/batch", json={"items": [s.model_dump(mode="json") for s in samples]}
        )
        assert batch.status_code == 200, batch.text
        assert len(batch.json()["items"]) == len(samples)
        # Both routes went through the batcher (one batch each, at least).
        metrics = client.get("/metrics").text
        rows = [
            line for line in metrics.splitlines() if line.startswith("opsline_batch_rows_count")
        ]
        assert rows and float(rows[0].split()[-1]) >= 2, rows
        # The same model answers the Open Inference Protocol, and /model says which backend.
        meta = client.get(f"/v2/models/{model_name}")
        assert meta.status_code == 200, meta.text
        assert {t["name"] for t in meta.json()["inputs"]} == set(recipe.Request.model_fields)
        served = client.get("/model").json()
        assert served["predictor"]["backend"] in ("native", "onnx", "int8")
        # A recipe with an ONNX export records its parity outcome on the version, and only a
        # passed check may serve the ONNX file.
        parity = result.tags.get("onnx.parity")
        if served["predictor"]["backend"] == "onnx":
            assert parity == "passed"
