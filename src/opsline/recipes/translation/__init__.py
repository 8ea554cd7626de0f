"""Danish → English translation: a Marian-style transformer trained from scratch on Tatoeba
(or a fine-tuned Hugging Face checkpoint), SacreBLEU/chrF evaluation, a text endpoint.

Importing this module is cheap (pydantic only): torch, transformers, tokenizers, sacrebleu
and pandas are imported inside the methods that use them.

Module map: ``sources`` (tatoeba / hf / gettext) · ``cleaning`` (normalise, filter, split) ·
``catalogs`` (gettext .mo/.po) · ``language`` + ``checks`` (pandera rules) ·
``tokenizer`` (BPE on train) · ``model``
(network + Lightning module) · ``batching`` · ``train`` · ``decoding`` · ``metrics`` ·
``card`` · ``predictor`` · ``quantize`` (int8 backend + its BLEU gate) · ``schemas`` ·
``ui`` · ``monitoring`` (drift features, live BLEU).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opsline.data.validation import Checks
from opsline.recipes.base import Evaluation, Recipe, Scalar, TrainedModel
from opsline.recipes.registry import register_recipe
from opsline.recipes.translation.config import TranslationModelConfig
from opsline.recipes.translation.schemas import (
    EXAMPLE,
    TranslationRequest,
    TranslationResponse,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.export.parity import ParityRecord
    from opsline.recipes.translation.predictor import TranslationPredictor


@register_recipe
class TranslationRecipe(Recipe):
    """Translate Danish sentences into English."""

    name = "translation"
    description = "Danish → English translation (Tatoeba / gettext / HF data), BLEU and chrF."
    primary_metric = "bleu"
    greater_is_better = True
    Request = TranslationRequest
    Response = TranslationResponse
    model_schema = TranslationModelConfig
    # Buckets of the predicted-value histogram: words per translation.
    predicted_value_buckets: ClassVar[tuple[float, ...]] = (1, 2, 4, 8, 16, 32, 64, 128)

    def model_name(self, cfg: Any) -> str:
        """One registered model (and dataset folder) per data source: a gettext model is
        never compared with a Tatoeba model on a different test set by the promotion gate."""
        source = str(cfg.recipe.data.get("source") or "tatoeba")
        return self.name if source == "tatoeba" else f"{self.name}_{source}"

    # -- data -------------------------------------------------------------------------
    def prepare(self, cfg: Any) -> dict[str, pd.DataFrame]:
        from opsline.recipes.translation.cleaning import prepare

        return prepare(cfg)

    def checks(self, cfg: Any) -> Checks:
        from opsline.recipes.translation.checks import checks

        return checks(cfg)

    # -- training ---------------------------------------------------------------------
    def train(self, cfg: Any, dataset: Any, run: Any, out_dir: Path) -> TrainedModel:
        from opsline.recipes.translation.train import train_translation

        return train_translation(cfg, dataset, run, Path(out_dir))

    def evaluate(self, cfg: Any, predictor: Any, frame: pd.DataFrame) -> Evaluation:
        """BLEU and chrF on the whole split (each distinct Danish sentence decoded once),
        plus the first ``recipe.eval.samples`` translations as ``samples.tsv``."""
        from opsline.recipes.translation.metrics import corpus_scores, sample_table

        ecfg = cfg.recipe.get("eval") or {}
        beams = int(ecfg.get("num_beams", 1))
        unique = list(dict.fromkeys(frame["da"]))
        decoded = dict(
            zip(
                unique,
                predictor.translate(
                    unique,
                    num_beams=beams,
                    max_new_tokens=int(ecfg.get("max_new_tokens", 64)),
                    batch_size=int(ecfg.get("batch_size", 64)),
                ),
                strict=True,
            )
        )
        hypotheses = [decoded[d] for d in frame["da"]]
        metrics = corpus_scores(hypotheses, list(frame["en"]))
        metrics["pairs"] = float(len(frame))
        n = int(ecfg.get("samples", 20))
        texts = (
            {
                "samples.tsv": sample_table(
                    list(frame["da"][:n]), list(frame["en"][:n]), {f"beams={beams}": hypotheses[:n]}
                )
            }
            if n
            else {}
        )
        return Evaluation(metrics=metrics, texts=texts)

    # -- serving ----------------------------------------------------------------------
    def load_predictor(self, model_dir: Path, backend: str = "auto") -> TranslationPredictor:
        """``auto`` serves int8 when its gate passed, ``native`` float32; translation has no
        ONNX export, so ``onnx`` is handled like ``auto`` (see ``quantize.choose_backend``)."""
        from opsline.recipes.translation.predictor import load_predictor

        return load_predictor(Path(model_dir), backend)

    def export_onnx(self, cfg: Any, model_dir: Path, dataset: Any) -> ParityRecord | None:
        """The core's registration hook (named for ONNX): translation's optimised backend is
        a dynamic-int8 model instead, checked by greedy val BLEU (drop ≤ 0.5) when
        ``model.quantize`` is on; the record lands in ``parity.json`` (``quantize``)."""
        from opsline.recipes.translation.quantize import export_int8

        return export_int8(cfg, Path(model_dir), dataset)

    # -- monitoring (see ``monitoring``) ---------------------------------------------------
    #: Distinct train sentences translated (greedy) at registration for the drift reference.
    reference_rows: ClassVar[int] = 32
    #: Feedback is a reference English translation of the request's text.
    feedback_type: ClassVar[type | None] = str

    def monitored_features(
        self, requests: Sequence[Any], responses: Sequence[Any]
    ) -> list[dict[str, Scalar]]:
        from opsline.recipes.translation.monitoring import monitored_features

        return monitored_features(requests, responses)

    def requests_from_frame(self, frame: pd.DataFrame) -> list[TranslationRequest]:
        from opsline.recipes.translation.monitoring import requests_from_frame

        return requests_from_frame(frame)

    def live_quality(
        self, predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]
    ) -> dict[str, float]:
        from opsline.recipes.translation.monitoring import live_quality

        return live_quality(predictions, actuals)

    def ui(self, predict: Callable[[list[TranslationRequest]], list[TranslationResponse]]) -> Any:
        from opsline.recipes.translation.ui import build_ui

        return build_ui(predict)

    def sample_requests(self) -> list[TranslationRequest]:
        return sample_requests()


def sample_requests() -> list[TranslationRequest]:
    """A few everyday Danish sentences (smoke tests, load tests, the UI default)."""
    return [
        TranslationRequest(text=EXAMPLE),
        TranslationRequest(text="Hvor ligger den nærmeste togstation?"),
        TranslationRequest(text="Tom sagde, at han ikke havde tid i dag.", num_beams=4),
    ]


__all__ = ["TranslationRecipe", "TranslationRequest", "TranslationResponse", "sample_requests"]
