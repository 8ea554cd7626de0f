"""The translation model's optimised backend: dynamic int8 quantization, gated by val BLEU.

Translation has no ONNX export (autoregressive ``generate`` with a KV cache does not fit the
one-graph ``model.onnx`` the core expects). Its optimised backend is a *dynamic int8* copy of
the float network, and the core's registration hook (``Recipe.export_onnx``) is where it is
checked. Decisions, and why:

* **What is quantized.** Every ``nn.Linear`` (attention projections, feed-forward layers and
  the output projection ``lm_head``) gets int8 weights (per-tensor scale); activations are
  quantized per call. Embeddings, LayerNorm and softmax stay float32. ``lm_head`` is the
  largest matmul of a decode step (vocab × d_model), so leaving it float would forfeit most of
  the gain; the BLEU gate decides whether its rounding hurts.
* **API.** ``torch.ao.quantization.quantize_dynamic``: torch 2.14 still ships and runs it but
  warns it is deprecated in favour of ``torchao`` (``quantize_(model,
  Int8DynamicActivationInt8WeightConfig())``), which is not installed and cannot be fetched
  offline. The two deprecation warnings are silenced at the call (they would be logged on
  every model load); migrating is one function here.
* **Nothing new on disk but the record.** The int8 model is rebuilt at load from the float
  ``model.safetensors``: quantize_dynamic derives scales from the weights' min/max, so it is
  deterministic and takes ~0.15 s for the default 6.8 M-parameter model. No pickle (the
  ``torch.save`` of a quantized module is the only way to store one), no second weights file
  to keep in sync. Caveat: the kernels come from ``torch.backends.quantized.engine`` (x86 /
  fbgemm here); a server on another engine (qnnpack on ARM) rounds slightly differently
  from what the gate measured.
* **The record** is a :class:`~opsline.export.parity.ParityRecord` (``exporter =
  "torch.quantize_dynamic"``, ``split = "val"``, metrics ``val_bleu_float``,
  ``val_bleu_int8``, ``bleu_drop``, tolerance ``bleu_drop: 0.5``), so the core writes it as
  ``parity.json``, into the card's ``int8`` section and onto the version (tags
  ``int8.parity`` / ``int8.reason``). ``select_backend`` never picks it (there is no
  ``model.onnx``), so
  :func:`choose_backend` reads it for the translation predictor.
* **The gate.** Greedy BLEU on the whole val split (the test split stays the promotion gate's
  and is not used to choose a backend), each distinct Danish sentence decoded once, as
  ``evaluate`` does. Passes iff ``float − int8 ≤ 0.5`` BLEU: half a point is below what a
  reseeded retraining moves (and inside sacreBLEU's bootstrap interval on ~1k pairs), so an
  int8 model that passes is as good as the float one within measurement, while a broken
  quantization (garbage or empty output) drops by far more.
* **On by default** (``model.quantize: true`` in ``marian.yaml``, inherited by every model
  config): on one core the default-size model serves 1.15× (batch 1) to 1.3× (batch 8) the
  sentences/s as int8 with no BLEU loss on val (``benchmarks/translation_int8.md``), and the
  gate costs two greedy val decodes (~17 s on one core) next to a ~20-minute training. A
  model whose gate fails still registers and serves float32.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.export.parity import ONNX_FILE, ParityRecord, failed, read_parity

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

EXPORTER = "torch.quantize_dynamic"
BLEU_DROP_TOLERANCE = 0.5
INT8, NATIVE = "int8", "native"


def quantize_network(network: Any) -> Any:
    """A dynamic-int8 copy of ``network`` (every ``nn.Linear``); ``network`` is untouched."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # "torch.ao.quantization is deprecated" and "quantize_per_tensor ... deprecated":
        # known (see the module docstring), and noise in every server log otherwise.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        quantized = quantize_dynamic(network, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
    return quantized.eval()


def greedy_bleu(
    network: Any,
    tokenizer: Any,
    frame: pd.DataFrame,
    *,
    prefix: str = "",
    max_source_tokens: int = 128,
    max_new_tokens: int = 64,
    batch_size: int = 64,
) -> dict[str, float]:
    """``{"bleu", "chrf"}`` of greedy decoding on ``frame`` (``da`` → ``en``)."""
    from opsline.recipes.translation.decoding import translate
    from opsline.recipes.translation.metrics import corpus_scores

    unique = list(dict.fromkeys(frame["da"]))
    decoded = dict(
        zip(
            unique,
            translate(
                network,
                tokenizer,
                unique,
                num_beams=1,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                prefix=prefix,
                max_source_tokens=max_source_tokens,
            ),
            strict=True,
        )
    )
    return corpus_scores([decoded[d] for d in frame["da"]], list(frame["en"]))


def gate_record(
    float_scores: dict[str, float],
    int8_scores: dict[str, float],
    rows: int,
    tolerance: float = BLEU_DROP_TOLERANCE,
    split: str = "val",
) -> ParityRecord:
    """The gate's verdict on measured scores (``bleu_drop = float − int8``)."""
    drop = float(float_scores["bleu"]) - float(int8_scores["bleu"])
    passed = math.isfinite(drop) and drop <= tolerance
    reason = (
        f"int8 dynamic quantization ({EXPORTER}, rebuilt at load; no ONNX file): greedy "
        f"{split} BLEU {float_scores['bleu']:.2f} float vs {int8_scores['bleu']:.2f} int8 "
        f"on {rows} pairs, a drop of {drop:.2f}, {'within' if passed else 'above'} the "
        f"tolerance {tolerance:g}."
    )
    metrics = {
        "val_bleu_float": float(float_scores["bleu"]),
        "val_bleu_int8": float(int8_scores["bleu"]),
        "bleu_drop": drop,
    }
    if "chrf" in float_scores and "chrf" in int8_scores:  # reported, not gated
        metrics.update(
            val_chrf_float=float(float_scores["chrf"]), val_chrf_int8=float(int8_scores["chrf"])
        )
    return ParityRecord(
        passed,
        reason,
        split,
        rows,
        metrics,
        {"bleu_drop": float(tolerance)},
        EXPORTER,
        backend="int8",
    )


def export_int8(
    cfg: Any, model_dir: Path, dataset: Any, tolerance: float = BLEU_DROP_TOLERANCE
) -> ParityRecord | None:
    """The registration hook: ``None`` unless ``cfg.model.quantize``; else the gate record
    (``tolerance``: the allowed BLEU drop; a parameter for tests, not a config key).

    Never raises: a quantization or decoding failure is a failed record (the float model
    still registers and serves).
    """
    from opsline.config import settings
    from opsline.recipes.translation.config import TranslationModelConfig

    if not settings(TranslationModelConfig, cfg.model).quantize:
        return None
    try:
        from opsline.recipes.translation.predictor import TranslationPredictor

        native = TranslationPredictor.load(Path(model_dir), backend=NATIVE)
        frame = dataset.frame("val")
        ecfg = cfg.recipe.get("eval") or {}
        kwargs = {
            "prefix": native.prefix,
            "max_source_tokens": native.max_source_tokens,
            "max_new_tokens": int(ecfg.get("max_new_tokens", 64)),
            "batch_size": int(ecfg.get("batch_size", 64)),
        }
        float_scores = greedy_bleu(native.network, native.tokenizer, frame, **kwargs)
        int8_scores = greedy_bleu(
            quantize_network(native.network), native.tokenizer, frame, **kwargs
        )
        return gate_record(float_scores, int8_scores, len(frame), tolerance)
    except Exception as error:  # any failure is the record's reason, never a crash
        log.warning("int8 quantization gate failed", exc_info=True)
        return failed(
            f"int8 dynamic quantization failed: {type(error).__name__}: {error}",
            EXPORTER,
            backend="int8",
        )


def read_gate(model_dir: Path) -> tuple[bool, str]:
    """``(passed, why)``: may ``model_dir`` serve int8? Re-checks the record's own numbers,
    so a record edited to ``passed: true`` with a drop above its tolerance does not serve."""
    record = read_parity(model_dir)
    if record is None:
        return False, "no int8 gate record (model.quantize was off at registration)"
    if record.exporter != EXPORTER:
        return False, (
            f"the directory's parity record is from {record.exporter or 'an unknown'}"
            f" exporter, not {EXPORTER}"
        )
    if not record.passed:
        return False, f"the int8 gate failed: {record.reason}"
    drop = record.metrics.get("bleu_drop")
    tolerance = record.tolerances.get("bleu_drop", BLEU_DROP_TOLERANCE)
    if drop is None or not math.isfinite(float(drop)) or float(drop) > float(tolerance):
        return False, (
            f"the int8 gate record says passed but its bleu_drop {drop} is not "
            f"within its tolerance {tolerance}"
        )
    return True, f"int8 gate passed: {record.reason}"


def choose_backend(model_dir: Path, requested: str | None = None) -> tuple[str, str]:
    """``("int8" | "native", why)`` for a translation directory.

    ``native`` → float32 always. ``auto`` → int8 iff its gate record passed. ``onnx`` →
    translation has no ONNX export; as the recipe contract says for such recipes, the
    request is ignored and handled like ``auto`` (the reason says so). It does not refuse:
    a server-wide ``OPSLINE_BACKEND=onnx`` set for tabular models must not take a
    translation server down, and int8 is this recipe's optimised backend.
    """
    from opsline.export.backend import requested_backend

    want = requested_backend(requested)  # UsageError for an unknown value
    if want == NATIVE:
        return NATIVE, "float32 weights (backend=native)."
    note = ""
    if want == "onnx":
        note = (
            f"backend=onnx ignored: translation has no {ONNX_FILE} (its optimised backend "
            "is int8); "
        )
    passed, why = read_gate(model_dir)
    if passed:
        return INT8, f"{note}{why}"
    return NATIVE, f"{note}float32 weights ({why})."
