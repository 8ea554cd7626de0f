"""The model card (``opsline_model.json``): what an exported image classifier is and holds.

Files of an exported model: ``model.safetensors`` (weights), ``preprocessing.json``
(resize + normalisation) and this card (architecture, task, class names, threshold,
lineage). Nothing is a pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsline.errors import ModelLoadError
from opsline.recipes.base import MODEL_CARD_FILE
from opsline.recipes.image_classification.preprocessing import FILE as PREPROCESSING_FILE

RECIPE = "image_classification"
CARD_VERSION = 1
WEIGHTS = "model.safetensors"


def write_card(out_dir: Path, *, kind: str, task: str, classes: list[str],
               architecture: dict[str, Any], threshold: float, **details: Any) -> Path:
    card = {"recipe": RECIPE, "kind": kind, "card_version": CARD_VERSION, "task": task,
            "classes": list(classes), "architecture": architecture, "threshold": threshold,
            "files": {"weights": WEIGHTS, "preprocessing": PREPROCESSING_FILE}, **details}
    path = Path(out_dir) / MODEL_CARD_FILE
    path.write_text(json.dumps(card, indent=2, default=str))
    return path


def read_card(model_dir: Path) -> dict[str, Any]:
    """The validated card; ``ModelLoadError`` says what is wrong with the directory."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_CARD_FILE
    if not path.is_file():
        raise ModelLoadError(f"{str(model_dir)!r} is not an exported model: it has no "
                             f"{MODEL_CARD_FILE}.")
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{MODEL_CARD_FILE} in {str(model_dir)!r} is not valid JSON "
                             f"({exc}).") from None
    if not isinstance(card, dict) or card.get("recipe") != RECIPE:
        found = card.get("recipe") if isinstance(card, dict) else None
        raise ModelLoadError(f"The model in {str(model_dir)!r} was made by recipe {found!r}, "
                             f"not {RECIPE!r}.")
    if card.get("task") not in ("multiclass", "multilabel") or not card.get("classes"):
        raise ModelLoadError(f"The model card in {str(model_dir)!r} has no task/classes.")
    for name in (WEIGHTS, PREPROCESSING_FILE):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"The model in {str(model_dir)!r} is incomplete: {name} is "
                                 "missing.")
    return card
