"""Exported model directories and the predictor: no pickle, clear load errors, one code path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from opsline.errors import ModelLoadError
from opsline.export.card import MODEL_CARD_FILE
from opsline.recipes.house_price import sample_requests
from opsline.recipes.house_price.schemas import HousePriceRequest

PICKLE_MAGIC = b"\x80"  # every pickle protocol >= 2 starts with PROTO (0x80)


@pytest.fixture(params=["mlp", "gbm"])
def trained(request):
    return request.getfixturevalue(f"{request.param}_trained")


def test_export_has_card_and_no_pickle(trained):
    model, _, _ = trained
    files = {p.name for p in model.model_dir.iterdir()}
    weights = "model.safetensors" if model.kind == "mlp" else "model.txt"
    assert files == {MODEL_CARD_FILE, "preprocessing.json", weights}
    card = json.loads((model.model_dir / MODEL_CARD_FILE).read_text())
    assert card["recipe"] == "house_price" and card["kind"] == model.kind
    assert card["feature_schema"]["raw_columns"]
    for path in model.model_dir.rglob("*"):
        assert path.suffix not in {".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib"}
        assert not path.read_bytes().startswith(PICKLE_MAGIC), path.name


def test_mlp_weights_load_with_safetensors(mlp_trained):
    from safetensors.torch import load_file

    tensors = load_file(str(mlp_trained[0].model_dir / "model.safetensors"))
    assert any(name.startswith("body.") for name in tensors)


@pytest.mark.parametrize("missing", ["preprocessing.json", "weights", MODEL_CARD_FILE])
def test_load_refuses_incomplete_directory(recipe, trained, tmp_path, missing):
    model = trained[0]
    copy = shutil.copytree(model.model_dir, tmp_path / "model")
    name = {"weights": "model.safetensors" if model.kind == "mlp" else "model.txt"}.get(
        missing, missing
    )
    (copy / name).unlink()
    with pytest.raises(ModelLoadError, match=name.replace(".", r"\.")):
        recipe.load_predictor(copy)


def test_load_refuses_other_recipe_and_unknown_kind(recipe, gbm_trained, tmp_path):
    copy = shutil.copytree(gbm_trained[0].model_dir, tmp_path / "model")
    card_path = copy / MODEL_CARD_FILE
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "recipe": "translation"}))
    with pytest.raises(ModelLoadError, match="translation"):
        recipe.load_predictor(copy)
    card_path.write_text(json.dumps({**card, "kind": "transformer"}))
    with pytest.raises(ModelLoadError, match="transformer"):
        recipe.load_predictor(copy)
    with pytest.raises(ModelLoadError, match="does not exist"):
        recipe.load_predictor(tmp_path / "nowhere")


def test_mlp_weights_must_match_the_card(recipe, mlp_trained, tmp_path):
    copy = shutil.copytree(mlp_trained[0].model_dir, tmp_path / "model")
    card = json.loads((copy / MODEL_CARD_FILE).read_text())
    card["architecture"]["hidden"] = [8]
    (copy / MODEL_CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="do not match"):
        recipe.load_predictor(copy)


@pytest.mark.parametrize("kind", ["mlp", "gbm"])
def test_requests_and_frames_share_one_code_path(request, kind, splits):
    predictor = request.getfixturevalue(f"{kind}_predictor")
    assert predictor.info["kind"] == kind
    rows = splits["test"].head(5)
    fields = HousePriceRequest.model_fields
    requests = [
        # Lax: the frame holds 2.0 for 2 garage cars (the JSON API is strict, rows are not).
        HousePriceRequest.model_validate(
            {k: v for k, v in row.items() if k in fields and pd.notna(v)}, strict=False
        )
        for row in rows.to_dict("records")
    ]
    responses = predictor.predict(requests)
    # A request carries only some columns; the frame path sees the full row, so compare
    # the request path with the frame path on the same completed rows.
    completed = predictor.preprocessor.complete([r.record() for r in requests])
    np.testing.assert_allclose(
        [r.predicted_price for r in responses], predictor.predict_frame(completed), rtol=1e-5
    )
    for r, req in zip(responses, requests, strict=True):
        assert r.model_kind == kind
        assert r.price_per_sqft == pytest.approx(r.predicted_price / req.gr_liv_area, rel=1e-3)


@pytest.mark.parametrize("kind", ["mlp", "gbm"])
def test_sample_predictions_are_plausible_and_ordered(request, kind):
    predictor = request.getfixturevalue(f"{kind}_predictor")
    typical, small, large = (r.predicted_price for r in predictor.predict(sample_requests()))
    assert 120_000 < typical < 250_000
    assert small < typical < large


def test_partial_request_uses_training_defaults(gbm_predictor):
    minimal = HousePriceRequest(
        neighborhood="NAmes", gr_liv_area=1500, overall_qual=6, year_built=1970
    )
    explicit = HousePriceRequest(
        **minimal.record(), lot_area=gbm_predictor.preprocessor.defaults["lot_area"]
    )
    a, b = gbm_predictor.predict([minimal, explicit])
    assert a.predicted_price == pytest.approx(b.predicted_price)


def test_evaluate_reports_metrics_and_figures(recipe, cfg, gbm_predictor, splits):
    evaluation = recipe.evaluate(cfg, gbm_predictor, splits["val"])
    m = evaluation.metrics
    assert {"rmse", "mae", "rmsle", "mape", "within_5pct", "within_10pct", "within_20pct"} <= set(m)
    assert 0 <= m["within_5pct"] <= m["within_10pct"] <= m["within_20pct"] <= 1
    assert set(evaluation.figures) == {"predicted_vs_actual.png", "residuals.png"}
    assert recipe.primary_metric == "rmsle" and recipe.greater_is_better is False
