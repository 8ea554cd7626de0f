"""``model.onnx`` for a trained house-price model, and the parity gate that decides if it serves.

The ONNX graph takes exactly the matrix the predictor's ``forward`` takes (built by the
compiled :class:`~opsline.recipes.house_price.plan.FeaturePlan`) and returns the raw model
output; pre- and post-processing stay in Python and are shared by both backends, so parity
only has to cover the model itself.

* MLP: ``torch.onnx.export`` with the torch.export-based (dynamo) exporter, the supported
  one since torch 2.9 (it needs onnxscript); the deprecated TorchScript exporter is the
  fallback if it fails. float32 input, dynamic batch axis, weights inside the file.
* GBM: onnxmltools' LightGBM converter (``TreeEnsembleRegressor``) with a **double** input.
  LightGBM compares features against double thresholds; float32 inputs can land on the other
  side of a threshold (on Ames it moved prices by up to 2e-5 relative, vs 1e-6 with double),
  so the matrix is fed exactly as LightGBM gets it. Categorical splits become chains of
  equality tests on the integer codes the plan writes; NaN (unknown level) fails them all,
  as it does in LightGBM.

The gate (:func:`check_parity`) runs native and ONNX on the test split and compares prices
with :func:`opsline.export.parity.compare_regression` (max relative difference <= 1e-4).
Nothing here raises: any failure is a failed :class:`ParityRecord` with its reason.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.export.parity import ONNX_FILE, ParityRecord, compare_regression, failed

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.recipes.house_price.predictor import HousePricePredictor

log = logging.getLogger(__name__)
# Default ONNX opset for the MLP (Gemm/Sigmoid/Mul/Squeeze are all old ops; 18 is what the
# dynamo exporter targets natively, so it needs no version conversion).
MLP_OPSET = 18
# onnxmltools 1.16 supports ai.onnx up to 15 for LightGBM.
GBM_OPSET = 15


def export_onnx(model_dir: Path, dataset: Any) -> ParityRecord:
    """Write ``model_dir/model.onnx`` and check it against the native model on the test split."""
    from opsline.recipes.house_price.predictor import load_predictor

    model_dir = Path(model_dir)
    exporter = ""
    try:
        native = load_predictor(model_dir, backend="native")
        exporter = (
            _export_mlp(native, model_dir / ONNX_FILE)
            if native.kind == "mlp"
            else _export_gbm(native, model_dir / ONNX_FILE)
        )
        test = dataset.frame("test")
    except Exception as exc:  # an exporter crash is a reason, never a failed training run
        log.warning("house_price ONNX export failed", exc_info=True)
        return failed(f"the ONNX export failed: {type(exc).__name__}: {exc}", exporter)
    return check_parity(model_dir, test, exporter, native=native)


def check_parity(
    model_dir: Path,
    frame: pd.DataFrame,
    exporter: str = "",
    native: HousePricePredictor | None = None,
) -> ParityRecord:
    """Native vs ``model.onnx`` prices on ``frame``'s rows, fed the serving path's matrix."""
    from opsline.errors import ModelLoadError
    from opsline.recipes.house_price.features import RAW_COLUMNS
    from opsline.recipes.house_price.predictor import load_predictor

    try:
        native = native or load_predictor(model_dir, backend="native")
        # Rows as the server sees them (records through the compiled plan); a data row's
        # missing values are NaN here, which the plan imputes as the dataset path does.
        records = frame.reindex(columns=RAW_COLUMNS).astype(object)
        records = records.where(records.notna(), float("nan")).to_dict("records")
        batch = native.plan_batch(records)
        expected = native.to_prices(native.forward(batch))
        onnx = _onnx_predictor(native, model_dir)
        got = onnx.to_prices(onnx.forward(batch))
    except ModelLoadError as exc:
        return failed(f"ONNX Runtime could not run {ONNX_FILE}: {exc}", exporter)
    except Exception as exc:
        log.warning("house_price ONNX parity check failed to run", exc_info=True)
        return failed(f"the parity check failed to run: {type(exc).__name__}: {exc}", exporter)
    return compare_regression(expected, got, split="test", exporter=exporter)


def _onnx_predictor(native: HousePricePredictor, model_dir: Path) -> HousePricePredictor:
    """A predictor on the same preprocessing whose ``forward`` is an ORT session.

    Built directly rather than via ``load_predictor(backend="onnx")``: that refuses any file
    without a passed parity record, and this is the check that writes the record.
    """
    onnx = type(native)(model_dir, native.card, native.preprocessor)
    onnx._load_onnx()
    onnx.backend = "onnx"
    return onnx


def _export_mlp(native: HousePricePredictor, path: Path) -> str:
    import torch

    network = native.network.eval()
    example = torch.zeros((2, native.plan_width()), dtype=torch.float32)
    names = {"input_names": ["features"], "output_names": ["output"]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter, not our concern here
            torch.onnx.export(
                network,
                (example,),
                str(path),
                dynamo=True,
                verbose=False,
                external_data=False,
                opset_version=MLP_OPSET,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                **names,
            )
        return f"torch.onnx (dynamo) {torch.__version__}"
    except Exception:
        log.warning("dynamo ONNX export failed; trying the TorchScript exporter", exc_info=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation warning: we know, it is the fallback
        torch.onnx.export(
            network,
            (example,),
            str(path),
            dynamo=False,
            opset_version=17,
            dynamic_axes={"features": {0: "batch"}, "output": {0: "batch"}},
            **names,
        )
    return f"torch.onnx (TorchScript) {torch.__version__}"


def _export_gbm(native: HousePricePredictor, path: Path) -> str:
    import onnxmltools
    from onnxmltools.convert.common.data_types import DoubleTensorType

    model = onnxmltools.convert_lightgbm(
        native.booster,
        name="house_price_gbm",
        target_opset=GBM_OPSET,
        zipmap=False,
        initial_types=[("features", DoubleTensorType([None, native.plan_width()]))],
    )
    path.write_bytes(model.SerializeToString())
    return f"onnxmltools {onnxmltools.__version__} (LightGBM, double input)"
