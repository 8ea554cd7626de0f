"""Choosing the inference backend for a model directory, and opening ONNX Runtime sessions.

``OPSLINE_BACKEND`` (or ``ServingSettings.backend``) says what the server wants:

* ``auto`` (default) — ONNX Runtime when ``model.onnx`` exists **and** its parity record
  passed, else the native weights (torch / LightGBM);
* ``onnx`` — ONNX Runtime or refuse to load (``ModelLoadError`` saying why);
* ``native`` — never ONNX.

ONNX Runtime threads come from ``OPSLINE_ORT_THREADS`` (default 1: the server runs one
batch at a time per model and its core is shared with the event loop; more intra-op
threads only pay for large image batches).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from opsline.errors import ModelLoadError, UsageError
from opsline.export.parity import ONNX_FILE, read_parity

Backend = Literal["auto", "onnx", "native"]
BACKENDS: tuple[str, ...] = ("auto", "onnx", "native")


def requested_backend(value: str | None = None) -> str:
    """The backend asked for: ``value``, else ``$OPSLINE_BACKEND``, else ``auto``."""
    backend = (value or os.environ.get("OPSLINE_BACKEND") or "auto").strip().lower()
    if backend not in BACKENDS:
        raise UsageError(f"Unknown backend {backend!r}: use one of {', '.join(BACKENDS)}.")
    return backend


def select_backend(model_dir: Path, requested: str | None = None) -> tuple[str, str]:
    """``(backend, why)`` for ``model_dir``: ``"onnx"`` or ``"native"`` and one sentence.

    Raises:
        ModelLoadError: ``onnx`` was required but the file is missing or failed parity.
    """
    want = requested_backend(requested)
    model_dir = Path(model_dir)
    if want == "native":
        return "native", "native weights (backend=native)."
    has_file = (model_dir / ONNX_FILE).is_file()
    record = read_parity(model_dir) if has_file else None
    if has_file and record is not None and record.passed:
        return "onnx", f"ONNX Runtime: parity passed ({record.reason})"
    if not has_file:
        why = f"no {ONNX_FILE} in the model directory"
    elif record is None:
        why = f"{ONNX_FILE} has no parity record, so it was never checked"
    else:
        why = f"{ONNX_FILE} failed its parity check: {record.reason}"
    if want == "onnx":
        raise ModelLoadError(f"backend=onnx was required but {why}.")
    return "native", f"native weights ({why})."


def ort_threads() -> int:
    """Intra-op threads for ONNX Runtime sessions (``OPSLINE_ORT_THREADS``, default 1)."""
    raw = os.environ.get("OPSLINE_ORT_THREADS", "1")
    try:
        threads = int(raw)
    except ValueError:
        raise UsageError(f"OPSLINE_ORT_THREADS must be a whole number, not {raw!r}.") from None
    if threads < 0:
        raise UsageError(f"OPSLINE_ORT_THREADS must be 0 (= all cores) or more, not {threads}.")
    return threads


def ort_session(path: Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for ``path`` (``ModelLoadError`` if bad)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = ort_threads() if threads is None else threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 (onnxruntime raises its own Fail/InvalidGraph types)
        raise ModelLoadError(f"ONNX Runtime cannot load {str(path)!r}: {exc}") from None
