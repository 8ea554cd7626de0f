"""The int8 backend: the registration gate writes its record, and only a passing record
serves the dynamic-int8 model (rebuilt at load from the float safetensors)."""

from __future__ import annotations

import json
import shutil

import pytest

from opsline.data.dataset import write_dataset
from opsline.errors import UsageError
from opsline.export.parity import PARITY_FILE, read_parity
from opsline.pipeline import export_onnx
from opsline.recipes.registry import get_recipe
from opsline.recipes.translation.predictor import TranslationPredictor
from opsline.recipes.translation.quantize import EXPORTER, export_int8

SMALL = ["model=tiny", "recipe.eval.max_new_tokens=6"]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, tatoeba_splits):
    """Real Tatoeba pairs, a few of each split (the gate decodes the whole val split)."""
    splits = {
        "train": tatoeba_splits["train"].head(40),
        "val": tatoeba_splits["val"].head(30),
        "test": tatoeba_splits["test"].head(10),
    }
    return write_dataset(splits, tmp_path_factory.mktemp("data"), "translation")


@pytest.fixture(scope="module")
def gated_dir(tmp_path_factory, tiny_model_dir, small_dataset, compose):
    """A copy of the tiny model registered through the core hook with ``model.quantize``."""
    model_dir = shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("gated") / "model")
    recipe = get_recipe("translation")
    record = export_onnx(recipe, compose(*SMALL, "model.quantize=true"), model_dir, small_dataset)
    assert record is not None
    return model_dir


def dynamic_linears(network):
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    modules = list(network.modules())
    return (
        sum(isinstance(m, DynamicLinear) for m in modules),
        sum(type(m) is nn.Linear for m in modules),
    )


def test_gate_record_is_written_with_both_bleus(gated_dir):
    record = read_parity(gated_dir)
    assert record.exporter == EXPORTER and record.split == "val" and record.rows == 30
    assert {"val_bleu_float", "val_bleu_int8", "bleu_drop"} <= set(record.metrics)
    m = record.metrics
    assert m["bleu_drop"] == pytest.approx(m["val_bleu_float"] - m["val_bleu_int8"])
    assert record.tolerances == {"bleu_drop": 0.5}
    assert record.passed == (m["bleu_drop"] <= 0.5)
    assert "int8" in record.reason and "no ONNX file" in record.reason
    card = json.loads((gated_dir / "opsline_model.json").read_text())
    assert card["int8"]["file"] is None  # the record travels in the card, no file behind it
    assert card["int8"]["exporter"] == EXPORTER and "onnx" not in card
    assert not (gated_dir / "model.onnx").exists()


def test_passing_gate_serves_int8(gated_dir):
    assert read_parity(gated_dir).passed  # random tiny model: both BLEUs ~0, drop ~0
    predictor = TranslationPredictor.load(gated_dir)
    assert predictor.backend == "int8"
    assert predictor.info["backend"] == "int8"
    assert "int8 gate passed" in predictor.info["backend_reason"]
    quantized, plain = dynamic_linears(predictor.network)
    assert quantized > 0 and plain == 0  # every Linear, lm_head included, is int8
    responses = predictor.predict(get_recipe("translation").sample_requests())
    assert len(responses) == 3 and all(isinstance(r.translation, str) for r in responses)
    assert [r.num_beams for r in responses] == [1, 1, 4]  # beam search works on int8 too


def test_int8_rebuilt_at_load_is_deterministic(gated_dir):
    first = TranslationPredictor.load(gated_dir).network.lm_head
    second = TranslationPredictor.load(gated_dir).network.lm_head
    assert first.weight().int_repr().equal(second.weight().int_repr())
    assert first.weight().q_scale() == second.weight().q_scale()


def test_native_ignores_the_gate(gated_dir):
    predictor = TranslationPredictor.load(gated_dir, backend="native")
    assert predictor.backend == "native"
    assert "backend=native" in predictor.info["backend_reason"]
    quantized, plain = dynamic_linears(predictor.network)
    assert quantized == 0 and plain > 0


def test_onnx_is_ignored_without_refusing(gated_dir):
    predictor = get_recipe("translation").load_predictor(gated_dir, backend="onnx")
    assert predictor.backend == "int8"
    assert "no model.onnx" in predictor.info["backend_reason"]
    with pytest.raises(UsageError):
        TranslationPredictor.load(gated_dir, backend="fp16")


def test_failing_gate_serves_float(tiny_model_dir, small_dataset, compose, tmp_path):
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    # No drop can be <= -1: the gate must fail and say why, with both BLEUs measured.
    record = export_int8(
        compose(*SMALL, "model.quantize=true"), model_dir, small_dataset, tolerance=-1.0
    )
    assert not record.passed and "above the tolerance -1" in record.reason
    assert {"val_bleu_float", "val_bleu_int8"} <= set(record.metrics)
    from opsline.export.parity import write_parity

    write_parity(model_dir, record)
    predictor = TranslationPredictor.load(model_dir)
    assert predictor.backend == "native"
    assert "int8 gate failed" in predictor.info["backend_reason"]
    assert dynamic_linears(predictor.network)[0] == 0


def test_perturbed_record_serves_float(gated_dir, tmp_path):
    model_dir = shutil.copytree(gated_dir, tmp_path / "model")
    data = json.loads((model_dir / PARITY_FILE).read_text())
    data["metrics"]["bleu_drop"] = 3.0  # still says passed: the numbers must agree
    (model_dir / PARITY_FILE).write_text(json.dumps(data))
    predictor = TranslationPredictor.load(model_dir)
    assert predictor.backend == "native" and "not within" in predictor.info["backend_reason"]
    data["exporter"] = "torch.onnx"  # some other exporter's record is not an int8 gate
    data["metrics"]["bleu_drop"] = 0.0
    (model_dir / PARITY_FILE).write_text(json.dumps(data))
    assert TranslationPredictor.load(model_dir).backend == "native"


def test_quantize_off_writes_no_record(tiny_model_dir, small_dataset, compose, tmp_path):
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    recipe = get_recipe("translation")
    assert (
        export_onnx(recipe, compose(*SMALL, "model.quantize=false"), model_dir, small_dataset)
        is None
    )
    assert not (model_dir / PARITY_FILE).exists()
    predictor = recipe.load_predictor(model_dir)
    assert predictor.backend == "native"
    assert "model.quantize was off" in predictor.info["backend_reason"]
