"""The model card (``opsline_model.json``) and a human-readable ``README.md`` beside it.

Written at the end of training, read first by the predictor. It records what the server
must apply exactly as training did (task prefix, source truncation, special-token ids)
and where the data came from (Tatoeba is CC-BY 2.0 FR: the attribution travels with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsline.export import card as model_card

RECIPE = "translation"
CARD_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
KINDS = ("marian", "pretrained")

LICENSES = {
    "tatoeba": (
        "CC-BY 2.0 (France)",
        (
            "Sentence pairs from Tatoeba (https://tatoeba.org) via "
            "the ManyThings.org export; each pair's authors are listed in the `attribution` "
            "column of the processed data."
        ),
    ),
    "gettext": (
        "the licenses of the translated packages (mostly GPL/LGPL)",
        (
            "Danish translations of the gettext catalogs installed on the machine; the "
            "`attribution` column names each catalog's project and translation team."
        ),
    ),
    "hf": ("see the dataset card", "A Hugging Face dataset; see its dataset card."),
}


def write_card(out_dir: Path, kind: str, **details: Any) -> Path:
    """Write ``opsline_model.json`` and a README model card into ``out_dir``."""
    card = {
        "recipe": RECIPE,
        "kind": kind,
        "card_version": CARD_VERSION,
        "files": {"weights": WEIGHTS_FILE, "config": CONFIG_FILE},
        **details,
    }
    path = model_card.write_card(out_dir, card)
    (Path(out_dir) / "README.md").write_text(readme(card))
    return path


def readme(card: dict[str, Any]) -> str:
    """A short model card: what the model is, its data and its license/attribution."""
    data = card.get("data", {})
    license_name, note = LICENSES.get(str(data.get("source")), ("unknown", ""))
    metrics = card.get("metrics") or {}
    lines = [
        "# opsline translation model (Danish → English)",
        "",
        f"- kind: {card.get('kind')} ({card.get('architecture', {}).get('summary', '')})",
        f"- data source: {data.get('source')} (data version {data.get('version')})",
        f"- training pairs: {data.get('train_pairs')}",
        f"- data license: {license_name}",
        "",
        "## Data attribution",
        "",
        note,
        "",
    ]
    for example in data.get("attribution_examples", [])[:5]:
        lines.append(f"- {example}")
    if metrics:
        lines += ["", "## Metrics", ""] + [f"- {k}: {v:.2f}" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"


def read_card(model_dir: Path) -> dict[str, Any]:
    """The validated card of ``model_dir``; ``ModelLoadError`` says what is wrong."""
    found = model_card.read_card(model_dir, RECIPE, KINDS)
    model_card.require_files(model_dir, (WEIGHTS_FILE, CONFIG_FILE), "translation model")
    return found
