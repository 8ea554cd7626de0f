"""The opsline code and config files each DVC stage depends on.

params.yaml pins every value a stage reads, so a config file matters only for what it adds
beyond those values; the code matters always. Deps are deliberately coarse (the recipe's
whole package) rather than risk a stale stage: editing a recipe reruns its pipeline.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opsline.config import config_dir


def _choice(overrides: Sequence[str], group: str) -> str | None:
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == group and value not in ("", "null"):
            return value
    return None


def _existing(paths: list[Path]) -> list[str]:
    seen: list[str] = []
    for path in paths:
        if path.exists() and str(path) not in seen:
            seen.append(str(path))
    return seen


def stage_code_deps(
    recipe: str, overrides: Sequence[str], resolved: dict[str, Any]
) -> dict[str, list[str]]:
    """Absolute paths per stage: the recipe package, the core modules the stage runs and
    the config files it composes (recipe, chosen model/data/experiment, trainer)."""
    package = Path(importlib.import_module("opsline").__file__).parent
    recipe_dir = Path(importlib.import_module(f"opsline.recipes.{recipe}").__file__).parent
    configs = config_dir()
    model = _choice(overrides, "model") or (resolved.get("model") or {}).get("name")
    data, experiment = _choice(overrides, "data"), _choice(overrides, "experiment")
    trainer = _choice(overrides, "trainer") or "cpu"

    data_configs = [configs / "recipe" / f"{recipe}.yaml"]
    if data:
        data_configs.append(configs / "data" / recipe / f"{data}.yaml")
    train_configs = [configs / "trainer" / "cpu.yaml", configs / "trainer" / f"{trainer}.yaml"]
    if model:
        train_configs.append(configs / "model" / recipe / f"{model}.yaml")
    if experiment:
        train_configs.append(configs / "experiment" / recipe / f"{experiment}.yaml")
    return {
        "prepare": _existing([recipe_dir, package / "data" / "dataset.py", *data_configs]),
        "validate": _existing([recipe_dir, package / "data" / "validation.py"]),
        "train": _existing(
            [recipe_dir, package / "pipeline.py", package / "training", *train_configs]
        ),
        "evaluate": _existing([recipe_dir, package / "pipeline.py"]),
    }
