"""The model card (``opsline_model.json``): what an exported directory holds and how to load it.

Written at the end of training, read first by the predictor, so a directory from another
recipe, another model kind or an interrupted export is refused with a clear sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsline.errors import ModelLoadError
from opsline.export import card

RECIPE = "house_price"
CARD_VERSION = 1
PREPROCESSING_FILE = "preprocessing.json"
# Files each model kind needs besides the card; nothing here is ever a pickle.
WEIGHTS = {"mlp": "model.safetensors", "gbm": "model.txt"}
KINDS = tuple(WEIGHTS)


def write_card(out_dir: Path, kind: str, **details: Any) -> Path:
    """Write the card for a ``kind`` model exported into ``out_dir``."""
    return card.write_card(
        out_dir,
        {
            "recipe": RECIPE,
            "kind": kind,
            "card_version": CARD_VERSION,
            "files": {"weights": WEIGHTS[kind], "preprocessing": PREPROCESSING_FILE},
            **details,
        },
    )


def read_card(model_dir: Path, kind: str | None = None) -> dict[str, Any]:
    """The validated card of ``model_dir``; ``ModelLoadError`` says what is wrong."""
    found = card.read_card(model_dir, RECIPE, KINDS)
    if kind is not None and found["kind"] != kind:
        raise ModelLoadError(
            f"The model in {str(model_dir)!r} is a {found['kind']!r} model, not {kind!r}."
        )
    card.require_files(
        model_dir, (WEIGHTS[found["kind"]], PREPROCESSING_FILE), f"{found['kind']} model"
    )
    return found
