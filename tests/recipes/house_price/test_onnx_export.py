"""model.onnx for both model kinds: export, the parity gate, and backend selection at load.

The exported directories are copies of the session's trained models (the originals must
keep their native-only file set for test_predictor).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from opsline.errors import ModelLoadError
from opsline.export.backend import select_backend
from opsline.export.card import MODEL_CARD_FILE
from opsline.export.parity import ONNX_FILE, REGRESSION_RTOL, read_parity, write_parity
from opsline.recipes.house_price import sample_requests
from opsline.recipes.house_price.onnx_export import check_parity
from opsline.recipes.house_price.schemas import HousePriceRequest


@pytest.fixture(scope="module", params=["mlp", "gbm"])
def exported(request, recipe, cfg, dataset, tmp_path_factory):
    """(model_dir, record): a trained model exported through the core's pipeline step."""
    from opsline.pipeline import export_onnx

    trained = request.getfixturevalue(f"{request.param}_trained")[0]
    model_dir = shutil.copytree(trained.model_dir, tmp_path_factory.mktemp("onnx") / "model")
    record = export_onnx(recipe, cfg, model_dir, dataset)
    return model_dir, record


def perturb(model_dir):
    """Scale the model's numbers by 5 %, as a bad exporter or a damaged file might."""
    import onnx
    from onnx import numpy_helper

    path = model_dir / ONNX_FILE
    model = onnx.load(str(path))
    trees = [n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor"]
    if trees:  # GBM: the leaf values are attributes of the tree node
        weights = next(a for a in trees[0].attribute if a.name == "target_weights")
        weights.floats[:] = [w * 1.05 for w in weights.floats]
    else:  # MLP: the weight matrices are initializers
        init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.05, init.name))
    onnx.save(model, str(path))


def test_export_passes_parity_and_records_it(exported):
    model_dir, record = exported
    assert record.passed, record.reason
    assert record.rows > 200 and record.split == "test"
    assert record.metrics["max_rel_diff"] <= REGRESSION_RTOL
    assert (model_dir / ONNX_FILE).stat().st_size > 1000
    assert read_parity(model_dir).passed
    card = json.loads((model_dir / MODEL_CARD_FILE).read_text())
    assert card["onnx"]["parity"] == "passed" and card["onnx"]["file"] == ONNX_FILE
    kind = card["kind"]
    assert record.exporter.startswith("torch.onnx" if kind == "mlp" else "onnxmltools")


def test_onnx_predictor_prices_match_native(recipe, exported, splits):
    model_dir, _ = exported
    onnx = recipe.load_predictor(model_dir)  # auto: the parity record passed
    native = recipe.load_predictor(model_dir, backend="native")
    assert onnx.backend == "onnx" and onnx.info["backend"] == "onnx"
    assert "parity passed" in onnx.info["backend_reason"]
    assert native.backend == "native"
    # The ONNX predictor never loaded the native model, so its prices are ORT's own.
    assert not hasattr(onnx, "network") and not hasattr(onnx, "booster")
    fields = HousePriceRequest.model_fields
    requests = [
        # Lax: the frame holds 2.0 for 2 garage cars (the JSON API is strict, rows are not).
        HousePriceRequest.model_validate(
            {k: v for k, v in row.items() if k in fields and pd.notna(v)}, strict=False
        )
        for row in splits["test"].head(50).to_dict("records")
    ] + sample_requests()
    got = [r.predicted_price for r in onnx.predict(requests)]
    want = [r.predicted_price for r in native.predict(requests)]
    np.testing.assert_allclose(got, want, rtol=REGRESSION_RTOL)
    np.testing.assert_allclose(
        onnx.predict_frame(splits["val"]), native.predict_frame(splits["val"]), rtol=REGRESSION_RTOL
    )
    one = onnx.predict(requests[:1])  # the dynamic batch axis also takes a single row
    assert one[0].predicted_price == pytest.approx(got[0], rel=REGRESSION_RTOL)


def test_a_perturbed_onnx_fails_the_gate_and_never_serves(recipe, exported, splits, tmp_path):
    model_dir = shutil.copytree(exported[0], tmp_path / "model")
    perturb(model_dir)
    record = check_parity(model_dir, splits["test"], exporter="test")
    assert not record.passed
    assert record.metrics["max_rel_diff"] > REGRESSION_RTOL
    assert "above the tolerance" in record.reason
    write_parity(model_dir, record)
    backend, why = select_backend(model_dir, "auto")
    assert backend == "native" and "failed its parity check" in why
    predictor = recipe.load_predictor(model_dir)
    assert predictor.backend == "native"
    assert predictor.info["backend_reason"] == why
    with pytest.raises(ModelLoadError, match="parity"):
        recipe.load_predictor(model_dir, backend="onnx")


def test_an_unreadable_onnx_file_is_a_failed_record_not_an_error(exported, splits, tmp_path):
    model_dir = shutil.copytree(exported[0], tmp_path / "model")
    (model_dir / ONNX_FILE).write_bytes(b"not an onnx graph")
    record = check_parity(model_dir, splits["test"])
    assert not record.passed and "could not run" in record.reason


def test_export_failure_is_a_failed_record(recipe, cfg, dataset, mlp_trained, tmp_path):
    model_dir = shutil.copytree(mlp_trained[0].model_dir, tmp_path / "model")
    card = json.loads((model_dir / MODEL_CARD_FILE).read_text())
    card["architecture"]["hidden"] = [8]  # weights no longer fit: the export cannot start
    (model_dir / MODEL_CARD_FILE).write_text(json.dumps(card))
    record = recipe.export_onnx(cfg, model_dir, dataset)
    assert not record.passed and "do not match" in record.reason
    assert not (model_dir / ONNX_FILE).exists()


@pytest.mark.parametrize("kind", ["mlp", "gbm"])
def test_model_without_onnx_loads_natively(recipe, request, kind):
    model_dir = request.getfixturevalue(f"{kind}_trained")[0].model_dir
    predictor = recipe.load_predictor(model_dir)
    assert predictor.backend == "native" and f"no {ONNX_FILE}" in predictor.info["backend_reason"]
    assert predictor.predict(sample_requests())[0].predicted_price > 0
    with pytest.raises(ModelLoadError, match=ONNX_FILE):
        recipe.load_predictor(model_dir, backend="onnx")
