"""Compose the Hydra config for one recipe from ``configs/`` plus ``key=value`` overrides.

Model, data and experiment names are per recipe: ``model=gbm`` means
``configs/model/<recipe>/gbm.yaml``, ``data=grapevine`` means
``configs/data/<recipe>/grapevine.yaml`` and ``experiment=high_lr`` means
``configs/experiment/<recipe>/high_lr.yaml``. We translate the short names here (and check
that they exist) so users never type the recipe twice and get the list of valid names when
they mistype one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from omegaconf import DictConfig

# Groups whose options live in a per-recipe sub-folder.
_PER_RECIPE_GROUPS = ("model", "experiment", "data")


def config_dir() -> Path:
    """Where the configs live: ``$OPSLINE_CONFIG_DIR``, the installed package, or the repo."""
    env = os.environ.get("OPSLINE_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here / "configs", here.parents[1] / "configs"]
    for candidate in candidates:
        if (candidate / "config.yaml").is_file():
            return candidate
    raise UsageError(f"No opsline configs found (looked in {', '.join(map(str, candidates))}).")


def options(group: str, recipe: str | None = None) -> list[str]:
    """Names available in a config group (per recipe for model/data/experiment)."""
    folder = config_dir() / group
    if recipe is not None and group in _PER_RECIPE_GROUPS:
        folder = folder / recipe
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _translate(recipe: str, override: str) -> str:
    """Map ``model=gbm`` to ``model=<recipe>/gbm`` after checking the name exists."""
    key, sep, value = override.partition("=")
    if not sep:
        raise UsageError(f"Override {override!r} is not of the form key=value.")
    bare = key.lstrip("+~")
    if bare == "recipe":
        raise UsageError("Give the recipe as the command's first argument, not as recipe=...")
    if bare in _PER_RECIPE_GROUPS and value not in ("null", ""):
        valid = options(bare, recipe)
        if value not in valid:
            plural = "data sources" if bare == "data" else f"{bare}s"
            raise UsageError(
                f"Unknown {bare} {value!r} for recipe {recipe!r}. "
                f"Valid {plural}: {', '.join(valid) or '(none)'}."
            )
        return f"{key}={recipe}/{value}"
    if bare == "trainer":
        valid = options("trainer")
        if value not in valid:
            raise UsageError(f"Unknown trainer {value!r}. Valid trainers: {', '.join(valid)}.")
    return override


def load_config(recipe: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``config.yaml`` with ``recipe=<recipe>`` and the user's overrides.

    Raises:
        UsageError: unknown recipe, model, experiment, trainer or config key (exit code 2).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    valid_recipes = options("recipe")
    if recipe not in valid_recipes:
        raise UsageError(f"Unknown recipe {recipe!r}. Valid recipes: {', '.join(valid_recipes)}.")
    translated = [f"recipe={recipe}"] + [_translate(recipe, o) for o in overrides]
    try:
        with initialize_config_dir(str(config_dir()), version_base=None):
            return compose("config", overrides=translated)
    except (HydraException, OmegaConfBaseException) as error:
        # Hydra's own message names the offending key; keep only its first line.
        first_line = str(error).strip().splitlines()[0]
        raise UsageError(f"Invalid override: {first_line}") from None
