"""ONNX export of image classifiers: the parity gate, and the ONNX Runtime backend.

Models are trained through the real pipeline (prepare → train, which exports and checks
``model.onnx``) on the grapevine scans at 64 px with the offline ImageNet weights; the
closed-form probe keeps each fit to seconds. The default config's dihedral TTA stays on, so
the gate compares exactly what the server computes.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from opsline import pipeline
from opsline.errors import ModelLoadError
from opsline.export.backend import select_backend
from opsline.export.parity import ONNX_FILE, PARITY_FILE, read_parity, write_parity
from opsline.recipes.image_classification.predictor import load_predictor

from .conftest import GRAPEVINE, leaf_bytes, require_grapevine, shapes_dataset

RECIPE = "image_classification"
# MobileNetV2 is the recipe's default model (probe fit, packaged weights, TTA auto=dihedral).
GRAPEVINE_64 = ["data=grapevine", f"data.path={GRAPEVINE}", "trainer=debug", "model.image_size=64"]


def train_model_dir(home: Path, overrides: list[str]) -> tuple[Path, dict[str, str], Path]:
    """Prepare + train in workspace ``home``: the run's model directory, its version tags
    and ``home``."""
    from opsline.tracking.registry import resolve_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        pipeline.prepare(RECIPE, overrides)
        # Registered: only a registered version gets the ONNX export and its parity check.
        result = pipeline.train(RECIPE, overrides)
        ref = resolve_model(RECIPE, f"runs:/{result.run_id}/model")
    return ref.local_dir, result.tags, home


@pytest.fixture(scope="session")
def mobilenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    require_grapevine()
    return train_model_dir(tmp_path_factory.mktemp("ic-onnx"), GRAPEVINE_64)


def requests():
    from opsline.recipes.image_classification import sample_requests
    from opsline.recipes.image_classification.schemas import ImageRequest

    leaves = [
        ImageRequest.from_bytes(leaf_bytes(name, 6, 96), top_k=5)
        for name in ("Ak", "Nazli", "Dimnit")
    ]
    return leaves + sample_requests()


def assert_same_predictions(a, b, atol: float = 1e-4) -> None:
    batch = a.preprocess(requests())
    pa, pb = a.forward(batch), b.forward(batch)
    assert pa.shape == pb.shape == (len(requests()), len(a.classes))
    assert np.abs(pa - pb).max() <= atol
    assert (pa.argmax(1) == pb.argmax(1)).all()


def test_mobilenetv2_export_passes_parity_and_serves_with_onnx_runtime(mobilenet) -> None:
    model_dir, tags, _ = mobilenet
    record = read_parity(model_dir)
    assert record is not None and record.passed, record
    assert (model_dir / ONNX_FILE).is_file() and record.exporter.startswith("torch.onnx")
    assert record.rows == 10 and record.metrics["top1_mismatches"] == 0  # the test split
    assert tags["onnx.parity"] == "passed"  # what the registry version would carry

    onnx = load_predictor(model_dir)  # auto: the file passed, so it serves
    native = load_predictor(model_dir, "native")
    assert (onnx.backend, onnx.info["backend"], onnx.net) == ("onnx", "onnx", None)
    assert "parity passed" in onnx.info["backend_reason"]
    assert native.backend == "native" and native.session is None
    assert onnx.pre.tta == "dihedral"  # the grapevine default: 8 views per image
    assert onnx.max_batch_size == native.max_batch_size == 4  # 32 rows ÷ 8 views
    assert_same_predictions(native, onnx)
    assert [r.predicted for r in onnx.predict(requests())] == [
        r.predicted for r in native.predict(requests())
    ]
    assert onnx.forward(onnx.preprocess([])).shape == (0, 5)


@pytest.mark.parametrize("case", ["efficientnet_lite0", "multilabel_small_cnn"])
def test_other_backbones_and_multilabel_pass_parity(case: str, tmp_path: Path) -> None:
    if case == "efficientnet_lite0":  # packaged ImageNet weights; ReLU6, depthwise, no SE
        require_grapevine()
        overrides = [
            *GRAPEVINE_64,
            "model=efficientnet_lite0",
            "model.fit=probe",
            "model.head_norm=true",
        ]
    else:  # multi-label: sigmoid per attribute, flatten-pooled small CNN, dropout, no TTA
        table = shapes_dataset(tmp_path / "shapes", n=120, size=32)
        overrides = [
            "data=face_attributes",
            f"data.path={table}",
            f"data.image_dir={table.parent / 'images'}",
            "model=small_cnn",
            "model.image_size=32",
            "model.pool=flatten",
            "model.hidden=32",
            "trainer=debug",
            "trainer.max_epochs=1",
        ]
    model_dir, tags, _ = train_model_dir(tmp_path / "home", overrides)
    record = read_parity(model_dir)
    assert record is not None and record.passed, record
    assert tags["onnx.parity"] == "passed"
    onnx, native = load_predictor(model_dir), load_predictor(model_dir, "native")
    assert onnx.backend == "onnx"
    if case != "efficientnet_lite0":
        assert onnx.task == "multilabel" and onnx.pre.tta == "none"
        assert onnx.max_batch_size == 32
    assert_same_predictions(native, onnx)


def perturb_classifier(path: Path) -> None:
    """Scale the weights of the graph's last matrix multiply: a wrong but runnable model."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {t.name: t for t in model.graph.initializer}
    last = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    weight = next(initializers[name] for name in last.input if name in initializers)
    array = numpy_helper.to_array(weight)
    rng = np.random.default_rng(0)
    weight.CopyFrom(
        numpy_helper.from_array(
            (array + rng.normal(0, array.std() * 3, array.shape)).astype(array.dtype), weight.name
        )
    )
    onnx.save(model, str(path))


def assert_refused(model_dir: Path, words: str) -> None:
    """auto falls back to torch saying why; onnx refuses to load."""
    chosen, why = select_backend(model_dir, "auto")
    assert chosen == "native" and words in why
    predictor = load_predictor(model_dir)
    assert predictor.backend == "native" and words in predictor.info["backend_reason"]
    with pytest.raises(ModelLoadError, match=words):
        load_predictor(model_dir, "onnx")


def grapevine_test_split(home: Path):
    from opsline.data.dataset import load_dataset
    from opsline.workspace import data_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        return load_dataset(data_dir("grapevine"), RECIPE).frame("test")


@pytest.mark.parametrize("breakage", ["perturbed_weights", "training_mode_batchnorm"])
def test_the_gate_catches_a_wrong_export(mobilenet, breakage: str, tmp_path: Path) -> None:
    import torch

    from opsline.recipes.image_classification.card import read_card
    from opsline.recipes.image_classification.onnx_export import INPUT, OUTPUT, check_parity
    from opsline.recipes.image_classification.predictor import load_network

    model_dir = Path(shutil.copytree(mobilenet[0], tmp_path / "model"))
    if breakage == "perturbed_weights":
        perturb_classifier(model_dir / ONNX_FILE)
    else:  # the classic trap: BatchNorm on batch statistics (and live dropout) in the graph
        net = load_network(model_dir, read_card(model_dir)).train()
        with warnings.catch_warnings():  # the exporter warns about exactly this mistake
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (torch.zeros(2, 3, 64, 64),),
                str(model_dir / ONNX_FILE),
                input_names=[INPUT],
                output_names=[OUTPUT],
                opset_version=18,
                dynamo=False,
                training=torch.onnx.TrainingMode.TRAINING,
                dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            )
    frame = grapevine_test_split(mobilenet[2])
    record = check_parity(model_dir, frame, exporter="broken on purpose")
    assert not record.passed, record
    assert record.metrics["max_abs_diff"] > 1e-3 and record.rows == len(frame)
    write_parity(model_dir, record)
    assert_refused(model_dir, "failed its parity check")


def test_export_failure_is_a_failed_record_never_an_exception(mobilenet, tmp_path) -> None:
    from omegaconf import OmegaConf

    from opsline.recipes.registry import get_recipe

    model_dir = Path(shutil.copytree(mobilenet[0], tmp_path / "model"))
    (model_dir / "model.safetensors").write_bytes(b"not safetensors")
    record = get_recipe(RECIPE).export_onnx(OmegaConf.create({"data": {}}), model_dir, None)
    assert not record.passed and "could not be loaded" in record.reason


def test_without_model_onnx_the_directory_loads_natively(mobilenet, tmp_path) -> None:
    model_dir = Path(shutil.copytree(mobilenet[0], tmp_path / "model"))
    (model_dir / ONNX_FILE).unlink()
    (model_dir / PARITY_FILE).unlink()
    assert_refused(model_dir, f"no {ONNX_FILE}")
    assert_same_predictions(load_predictor(model_dir), load_predictor(mobilenet[0]))


def test_an_unchecked_onnx_file_never_serves(mobilenet, tmp_path) -> None:
    model_dir = Path(shutil.copytree(mobilenet[0], tmp_path / "model"))
    (model_dir / PARITY_FILE).unlink()
    assert_refused(model_dir, "never checked")


def test_backend_native_ignores_a_passing_onnx_file(mobilenet, monkeypatch) -> None:
    model_dir = mobilenet[0]
    assert read_parity(model_dir).passed
    predictor = load_predictor(model_dir, "native")
    assert (predictor.backend, predictor.session) == ("native", None)
    assert predictor.info["backend_reason"] == "native weights (backend=native)."
    monkeypatch.setenv("OPSLINE_BACKEND", "native")  # the server's setting, via None
    assert load_predictor(model_dir, None).backend == "native"
