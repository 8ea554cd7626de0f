"""The model card (``opsline_model.json``): what an exported image classifier is and holds.

Files of an exported model: ``model.safetensors`` (weights), ``preprocessing.json``
(resize + normalisation) and this card (architecture, task, class names, threshold,
lineage). Nothing is a pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsline.errors import ModelLoadError
from opsline.export import card as model_card
from opsline.recipes.image_classification.preprocessing import FILE as PREPROCESSING_FILE

RECIPE = "image_classification"
CARD_VERSION = 1
WEIGHTS = "model.safetensors"


def write_card(
    out_dir: Path,
    *,
    kind: str,
    task: str,
    classes: list[str],
    architecture: dict[str, Any],
    threshold: float,
    **details: Any,
) -> Path:
    card = {
        "recipe": RECIPE,
        "kind": kind,
        "card_version": CARD_VERSION,
        "task": task,
        "classes": list(classes),
        "architecture": architecture,
        "threshold": threshold,
        "files": {"weights": WEIGHTS, "preprocessing": PREPROCESSING_FILE},
        **details,
    }
    return model_card.write_card(out_dir, card)


def read_card(model_dir: Path) -> dict[str, Any]:
    """The validated card; ``ModelLoadError`` says what is wrong with the directory."""
    card = model_card.read_card(model_dir, RECIPE)
    if card.get("task") not in ("multiclass", "multilabel") or not card.get("classes"):
        raise ModelLoadError(f"The model card in {str(model_dir)!r} has no task/classes.")
    model_card.require_files(model_dir, (WEIGHTS, PREPROCESSING_FILE))
    return card
