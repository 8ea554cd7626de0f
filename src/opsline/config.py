"""Compose the Hydra config for one recipe from ``configs/`` plus ``key=value`` overrides.

Model, data and experiment names are per recipe: ``model=gbm`` means
``configs/model/<recipe>/gbm.yaml``, ``data=grapevine`` means
``configs/data/<recipe>/grapevine.yaml`` and ``experiment=high_lr`` means
``configs/experiment/<recipe>/high_lr.yaml``. We translate the short names here (and check
that they exist) so users never type the recipe twice and get the list of valid names when
they mistype one.

Each recipe declares a typed schema for its ``model`` group (a dataclass per model kind,
``Recipe.model_schema``); :func:`load_config` checks the composed ``model`` node against it
once, so a wrong type or an unknown key fails at composition with one sentence naming the
key (exit code 2), before any data is read. Recipes then read the node as that dataclass
with :func:`settings`: typed attributes instead of ``int(cfg.model.x)`` casts.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from omegaconf import DictConfig

    from opsline.recipes.base import Recipe

T = TypeVar("T")

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
            cfg = compose("config", overrides=translated)
    except (HydraException, OmegaConfBaseException) as error:
        # Hydra's own message names the offending key; keep only its first line.
        first_line = str(error).strip().splitlines()[0]
        raise UsageError(f"Invalid override: {first_line}") from None
    check_model(recipe, cfg)
    return cfg


# -- typed model settings ---------------------------------------------------------------


def schema_for(recipe: type[Recipe] | Recipe, model_name: str) -> type | None:
    """The dataclass ``recipe`` declares for its model ``model_name`` (None: undeclared).

    Raises:
        UsageError: the recipe declares one schema per model kind and has none by this name.
    """
    declared = recipe.model_schema
    if declared is None or not isinstance(declared, Mapping):
        return declared
    if model_name not in declared:
        raise UsageError(
            f"Invalid config: model.name={model_name!r} is not a {recipe.name} model "
            f"(valid: {', '.join(declared)})."
        )
    schema: type = declared[model_name]
    return schema


def check_model(recipe_name: str, cfg: DictConfig) -> None:
    """Check the composed ``cfg.model`` against the recipe's schema (see :func:`settings`)."""
    from opsline.recipes.registry import is_recipe, recipe_class

    model = cfg.get("model")
    if model is None or not is_recipe(recipe_name):
        return
    name = str(model.get("name"))
    schema = schema_for(recipe_class(recipe_name), name)
    if schema is not None:
        settings(schema, model, label=f"the {recipe_name} model {name!r}")


def settings(schema: type[T], node: Any, where: str = "model", label: str | None = None) -> T:
    """``node`` (a config node or mapping) as an instance of the dataclass ``schema``.

    Every key must be a field (a missing one takes the field's default); each value must
    have the field's type: ``int`` (not a float or bool), ``float`` (an int is widened),
    ``bool``, ``str``, ``Literal[...]`` (one of the choices), ``X | None``, ``list[X]``,
    ``dict[str, X]`` or a nested dataclass.

    ``label`` names the whole in messages (default: the dataclass's name).

    Raises:
        UsageError: one sentence naming the key (``model.lr``) and what is wrong with it.
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, dict):
        raise _fail(where, node, "a mapping")
    return typing.cast(T, _dataclass(node, schema, where, label))


def _fail(where: str, value: Any, expected: str) -> UsageError:
    return UsageError(
        f"Invalid config: {where} must be {expected}, not {value!r} ({type(value).__name__})."
    )


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return "any value"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is list:
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        item = args[0] if args else Any
        return f"a list of {plural.get(item, _describe(item))}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in args or isinstance(value, bool) != any(isinstance(a, bool) for a in args):
            raise _fail(where, value, _describe(hint))
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise _fail(where, value, _describe(hint))
        for arm in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arm, where)
            except UsageError:
                continue
        raise _fail(where, value, _describe(hint))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _fail(where, value, _describe(hint))
        item = args[0] if args else Any
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, value, _describe(hint))
        item = args[1] if len(args) == 2 else Any
        return {str(k): _convert(v, item, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass(value, hint, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise _fail(where, value, _describe(hint))
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, value, _describe(hint))
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, value, _describe(hint))
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _fail(where, value, _describe(hint))
        return value
    raise TypeError(f"settings() cannot check {where} of type {hint!r}")  # a schema bug


def _dataclass(value: Any, schema: type, where: str, label: str | None = None) -> Any:
    if not isinstance(value, dict):
        raise _fail(where, value, "a mapping")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    for key in value:
        if key not in fields:
            raise UsageError(
                f"Invalid config: {where}.{key} is not a setting of {label or schema.__name__} "
                f"(valid: {', '.join(fields)})."
            )
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = _convert(value[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise UsageError(f"Invalid config: {where}.{name} is missing.")
    return schema(**kwargs)
