"""The model card (``opsline_model.json``) every exported model directory carries.

Written at the end of training and read first at load time, so a directory from another
recipe, another model kind or an interrupted export is refused with one clear sentence
(``ModelLoadError``) before any weights are touched. Recipes add their own fields and say
which files their kind of model needs; the checks themselves live here, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opsline.errors import ModelLoadError

#: Name of the JSON file every exported model directory carries; the server reads it to
#: know which recipe (and which model kind inside the recipe) can load the directory.
MODEL_CARD_FILE = "opsline_model.json"


def write_card(out_dir: Path, card: dict[str, Any]) -> Path:
    """Write ``card`` as the model card of ``out_dir``."""
    path = Path(out_dir) / MODEL_CARD_FILE
    path.write_text(json.dumps(card, indent=2, default=str))
    return path


def read_card(model_dir: Path, recipe: str, kinds: Iterable[str] | None = None) -> dict[str, Any]:
    """The card of ``model_dir`` after checking it exists, parses and names ``recipe``.

    Args:
        kinds: the model kinds this recipe loads; ``None`` skips the kind check.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"Model directory {str(model_dir)!r} does not exist.")
    path = model_dir / MODEL_CARD_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{str(model_dir)!r} is not an exported model: it has no {MODEL_CARD_FILE}."
        )
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"{MODEL_CARD_FILE} in {str(model_dir)!r} is not valid JSON ({exc})."
        ) from None
    if not isinstance(card, dict) or card.get("recipe") != recipe:
        found = card.get("recipe") if isinstance(card, dict) else None
        raise ModelLoadError(
            f"The model in {str(model_dir)!r} was made by recipe {found!r}, not {recipe!r}."
        )
    if kinds is not None and card.get("kind") not in tuple(kinds):
        raise ModelLoadError(
            f"The model in {str(model_dir)!r} has kind {card.get('kind')!r}; "
            f"the {recipe} recipe loads: {', '.join(kinds)}."
        )
    return card


def require_files(model_dir: Path, names: Iterable[str], what: str = "model") -> None:
    """``ModelLoadError`` naming the first of ``names`` missing from ``model_dir``."""
    for name in names:
        if not (Path(model_dir) / name).is_file():
            raise ModelLoadError(
                f"The {what} in {str(model_dir)!r} is incomplete: {name} is missing."
            )
