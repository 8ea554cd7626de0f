"""``model.onnx`` for an exported image classifier, and the parity gate that lets it serve.

What the graph computes: **normalised float32 pixels N×C×H×W → logits N×K** (batch axis
dynamic, H = W = ``image_size`` fixed because preprocessing always resizes to it). Logits,
not probabilities, so that one graph serves both tasks and everything around the network —
uint8 → float, mean/std, the 8 TTA views, softmax or sigmoid, the view average — stays the
predictor's own torch code for both backends (``predictor.ImagePredictor._logits``).

Exporter: ``torch.onnx.export(dynamo=True)`` (``torch.export`` + onnxscript, opset 18),
offline, the supported path in torch ≥ 2.9. Checked on MobileNetV2 (ReLU6, head BatchNorm),
EfficientNet-Lite0 and the small CNN: max |logit difference| ~1e-5. The TorchScript exporter
(``dynamo=False``, deprecated) is the fallback only if the dynamo path raises; both files go
through the same gate. The net is put in ``eval()`` before export: an exporter that traces a
training-mode net bakes in batch-statistics BatchNorm and live dropout, which is wrong and
silent — exactly what the parity check on the test split is there to catch (see the tests).
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.export.parity import ParityRecord

log = logging.getLogger(__name__)

OPSET = 18  # the dynamo exporter's own target: asking lower makes it down-convert the graph
DYNAMO = f"torch.onnx.export(dynamo=True, opset {OPSET})"
TORCHSCRIPT = f"torch.onnx.export(dynamo=False, opset {OPSET})"
INPUT, OUTPUT = "pixels", "logits"


def export_network(net: Any, path: Path, channels: int, image_size: int) -> str:
    """Write ``net`` (put in eval mode) to ``path`` as ONNX; returns the exporter used.

    Raises whatever the exporters raise when neither can convert the network.
    """
    import torch

    net.eval()  # running BatchNorm statistics, dropout off: the serving computation
    # Batch 2 in the example: torch.export specialises a dimension whose example size is 1.
    example = (torch.zeros(2, channels, image_size, image_size),)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter; the gate judges the result
            torch.onnx.export(
                net,
                example,
                str(path),
                input_names=[INPUT],
                output_names=[OUTPUT],
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            )
        return DYNAMO
    except Exception as error:  # noqa: BLE001 - any dynamo failure: try the older path
        log.warning(
            "dynamo ONNX export failed (%s: %s); trying the TorchScript exporter",
            type(error).__name__,
            error,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation warning, known and recorded
        torch.onnx.export(
            net,
            example,
            str(path),
            input_names=[INPUT],
            output_names=[OUTPUT],
            opset_version=OPSET,
            dynamo=False,
            training=torch.onnx.TrainingMode.EVAL,
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        )
    return TORCHSCRIPT


def check_parity(
    model_dir: Path, frame: pd.DataFrame, limits: dict[str, Any] | None = None, exporter: str = ""
) -> ParityRecord:
    """Probabilities of torch vs ONNX Runtime on ``frame`` through the serving ``forward``
    (same decoding, TTA and activation), held to
    :func:`opsline.export.parity.compare_classification`."""
    from opsline.export.backend import ort_session
    from opsline.export.parity import ONNX_FILE, compare_classification
    from opsline.recipes.image_classification.predictor import ImagePredictor

    model_dir = Path(model_dir)
    native = ImagePredictor.load(model_dir, backend="native")
    # Not via select_backend: this check is what will make the file selectable.
    onnx = ImagePredictor(
        model_dir, native.card, native.pre, None, ort_session(model_dir / ONNX_FILE), "parity check"
    )
    return compare_classification(
        native.predict_frame(frame, limits),
        onnx.predict_frame(frame, limits),
        split="test",
        exporter=exporter,
    )


def export_onnx(cfg: Any, model_dir: Path, dataset: Any) -> ParityRecord:
    """Export ``model_dir``'s network to ``model.onnx`` and check it on the test split.

    Never raises: a failure at any step is a failed record saying which step and why, so
    the native model still registers and the ONNX file never serves.
    """
    from opsline.export.parity import ONNX_FILE, failed
    from opsline.recipes.image_classification.card import read_card
    from opsline.recipes.image_classification.data import decode_limits
    from opsline.recipes.image_classification.predictor import load_network
    from opsline.recipes.image_classification.preprocessing import Preprocessing

    model_dir = Path(model_dir)
    path = model_dir / ONNX_FILE
    try:
        card = read_card(model_dir)
        pre = Preprocessing.load(model_dir)
        net = load_network(model_dir, card)
    except Exception as error:  # noqa: BLE001 - the contract: a reason, never a crash
        return failed(
            f"the exported model could not be loaded for the ONNX export: "
            f"{type(error).__name__}: {error}"
        )
    started = time.perf_counter()
    try:
        exporter = export_network(net, path, pre.channels, pre.image_size)
    except Exception as error:  # noqa: BLE001
        path.unlink(missing_ok=True)  # a half-written file is nothing to inspect or serve
        return failed(
            f"torch.onnx.export failed for {card.get('kind')}: "
            f"{type(error).__name__}: {str(error)[:500]}",
            DYNAMO,
        )
    exported = time.perf_counter() - started
    try:
        record = check_parity(model_dir, dataset.frame("test"), decode_limits(cfg.data), exporter)
    except Exception as error:  # noqa: BLE001 - ORT cannot load/run it: the file is unusable
        return failed(
            f"ONNX Runtime could not run the exported {ONNX_FILE}: "
            f"{type(error).__name__}: {str(error)[:500]}",
            exporter,
        )
    # Kept even when parity fails: the file is evidence for whoever debugs the exporter, and
    # select_backend refuses it on the record.
    record.metrics["export_seconds"] = round(exported, 2)
    record.metrics["check_seconds"] = round(time.perf_counter() - started - exported, 2)
    log.info("ONNX parity %s: %s", "passed" if record.passed else "FAILED", record.reason)
    return record
