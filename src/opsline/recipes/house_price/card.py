"""The model card (``opsline_model.json``): what an exported directory holds and how to load it.

Written at the end of training, read first by the predictor, so a directory from another
recipe, another model kind or an interrupted export is refused with a clear sentence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsline.errors import ModelLoadError
from opsline.recipes.base import MODEL_CARD_FILE

RECIPE = "house_price"
CARD_VERSION = 1
PREPROCESSING_FILE = "preprocessing.json"
# Files each model kind needs besides the card; nothing here is ever a pickle.
WEIGHTS = {"mlp": "model.safetensors", "gbm": "model.txt"}
KINDS = tuple(WEIGHTS)


def write_card(out_dir: Path, kind: str, **details: Any) -> Path:
    """Write the card for a ``kind`` model exported into ``out_dir``."""
    card = {"recipe": RECIPE, "kind": kind, "card_version": CARD_VERSION,
            "files": {"weights": WEIGHTS[kind], "preprocessing": PREPROCESSING_FILE},
            **details}
    path = Path(out_dir) / MODEL_CARD_FILE
    path.write_text(json.dumps(card, indent=2, default=str))
    return path


def read_card(model_dir: Path, kind: str | None = None) -> dict[str, Any]:
    """The validated card of ``model_dir``; ``ModelLoadError`` says what is wrong."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"Model directory {str(model_dir)!r} does not exist.")
    path = model_dir / MODEL_CARD_FILE
    if not path.exists():
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
    if card.get("kind") not in KINDS:
        raise ModelLoadError(f"The model in {str(model_dir)!r} has kind {card.get('kind')!r}; "
                             f"the {RECIPE} recipe loads: {', '.join(KINDS)}.")
    if kind is not None and card["kind"] != kind:
        raise ModelLoadError(f"The model in {str(model_dir)!r} is a {card['kind']!r} model, "
                             f"not {kind!r}.")
    for name in (WEIGHTS[card["kind"]], PREPROCESSING_FILE):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"The {card['kind']} model in {str(model_dir)!r} is incomplete: "
                                 f"{name} is missing.")
    return card
