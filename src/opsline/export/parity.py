"""ONNX parity records: may a version serve its ``model.onnx``?

At registration a recipe exports ``model.onnx`` beside its native weights and compares the
two backends on the test split. The outcome is written as ``parity.json`` in the model
directory (so it travels with the version's files) and recorded on the registered version
(tags ``onnx.parity`` / ``onnx.reason``) and in the model card. The server reads it at load
(:func:`opsline.export.backend.select_backend`): an export that failed its check, or was
never checked, never serves.

Tolerances (why these numbers):

* regression — max relative difference of the *decoded* prediction (a price in USD)
  ``<= 1e-4``: a hundredth of a percent, far below the model's own error (~9 % RMSLE) and
  above float32 round-off through exp() (~1e-6 relative);
* classification — the same top-1 class on every test image and max absolute probability
  difference ``<= 1e-3``: float32 convolution reordering moves probabilities by ~1e-5;
  a wrong exporter path (a known trap for CNNs) moves them by far more, or flips classes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

ONNX_FILE = "model.onnx"
PARITY_FILE = "parity.json"
REGRESSION_RTOL = 1e-4
CLASSIFICATION_ATOL = 1e-3


@dataclass
class ParityRecord:
    """The outcome of comparing ONNX Runtime with the native model on one split.

    Attributes:
        passed: the ONNX file may serve.
        reason: one sentence: what was compared and, on failure, what broke (or why no
            export exists).
        split: the split compared (``test``).
        rows: rows (images, houses) compared.
        metrics: the measured differences (e.g. ``max_rel_diff``, ``top1_mismatches``).
        tolerances: the bounds they were held to.
        exporter: which converter wrote the file (``torch.onnx`` / ``onnxmltools`` …).
        backend: the optimised backend this record gates: ``onnx`` (a ``model.onnx`` file)
            or ``int8`` (translation's dynamic quantization, rebuilt at load). It names the
            version tags (``onnx.parity``, ``int8.parity``) and the model-card section.
    """

    passed: bool
    reason: str
    split: str = "test"
    rows: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    tolerances: dict[str, float] = field(default_factory=dict)
    exporter: str = ""
    backend: str = "onnx"

    def tags(self) -> dict[str, str]:
        """Registry version tags: ``<backend>.parity`` = passed|failed, ``<backend>.reason``."""
        return {
            f"{self.backend}.parity": "passed" if self.passed else "failed",
            f"{self.backend}.reason": self.reason[:4000],
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def write_parity(model_dir: Path, record: ParityRecord) -> Path:
    """Write ``parity.json`` and the ``<backend>`` section (``onnx``/``int8``) of the card."""
    from opsline.export.card import MODEL_CARD_FILE

    model_dir = Path(model_dir)
    path = model_dir / PARITY_FILE
    path.write_text(json.dumps(record.to_dict(), indent=2))
    card_path = model_dir / MODEL_CARD_FILE
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        has_file = record.backend == "onnx" and (model_dir / ONNX_FILE).is_file()
        card[record.backend] = {
            "file": ONNX_FILE if has_file else None,
            "exporter": record.exporter,
            "parity": "passed" if record.passed else "failed",
            "reason": record.reason,
            "metrics": record.metrics,
            "tolerances": record.tolerances,
        }
        card_path.write_text(json.dumps(card, indent=2, default=str))
    return path


def read_parity(model_dir: Path) -> ParityRecord | None:
    """The directory's parity record, or ``None`` if it has none (or it is unreadable)."""
    path = Path(model_dir) / PARITY_FILE
    try:
        return ParityRecord.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def failed(reason: str, exporter: str = "", backend: str = "onnx") -> ParityRecord:
    """A record for an export that could not even be produced or run."""
    return ParityRecord(passed=False, reason=reason, exporter=exporter, backend=backend)


def compare_regression(
    native: np.ndarray,
    onnx: np.ndarray,
    *,
    split: str = "test",
    rtol: float = REGRESSION_RTOL,
    exporter: str = "",
) -> ParityRecord:
    """Compare decoded regression outputs (e.g. prices) row by row."""
    import numpy as np

    native = np.asarray(native, dtype=np.float64).ravel()
    onnx = np.asarray(onnx, dtype=np.float64).ravel()
    if native.shape != onnx.shape:
        return failed(f"ONNX returned {onnx.shape[0]} values for {native.shape[0]} rows.", exporter)
    if not np.all(np.isfinite(onnx)):
        return ParityRecord(
            False,
            f"ONNX returned non-finite values on the {split} split.",
            split,
            len(native),
            {},
            {"max_rel_diff": rtol},
            exporter,
        )
    rel = np.abs(onnx - native) / np.maximum(np.abs(native), 1e-12)
    worst = float(rel.max()) if rel.size else 0.0
    passed = worst <= rtol
    verdict = "within" if passed else "above"
    reason = (
        f"max relative difference {worst:.3g} on {len(native)} {split} rows, "
        f"{verdict} the tolerance {rtol:g}."
    )
    return ParityRecord(
        passed,
        reason,
        split,
        len(native),
        {"max_rel_diff": worst, "mean_rel_diff": float(rel.mean()) if rel.size else 0.0},
        {"max_rel_diff": rtol},
        exporter,
    )


def compare_classification(
    native: np.ndarray,
    onnx: np.ndarray,
    *,
    split: str = "test",
    atol: float = CLASSIFICATION_ATOL,
    exporter: str = "",
) -> ParityRecord:
    """Compare class probabilities (N×K): same top-1 everywhere, max abs diff ``<= atol``."""
    import numpy as np

    native = np.asarray(native, dtype=np.float64)
    onnx = np.asarray(onnx, dtype=np.float64)
    if native.shape != onnx.shape:
        return failed(
            f"ONNX returned probabilities of shape {onnx.shape}, the native model {native.shape}.",
            exporter,
        )
    rows = int(native.shape[0])
    mismatches = int((native.argmax(1) != onnx.argmax(1)).sum()) if rows else 0
    worst = float(np.abs(native - onnx).max()) if native.size else 0.0
    if not np.all(np.isfinite(onnx)):
        worst = float("inf")
    passed = mismatches == 0 and worst <= atol
    reason = (
        f"top-1 differs on {mismatches} of {rows} {split} rows; max probability "
        f"difference {worst:.3g} (tolerance {atol:g})."
    )
    return ParityRecord(
        passed,
        reason,
        split,
        rows,
        {"top1_mismatches": float(mismatches), "max_abs_diff": worst},
        {"top1_mismatches": 0.0, "max_abs_diff": atol},
        exporter,
    )
