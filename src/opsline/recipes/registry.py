"""The recipe registry: which recipe classes exist, by name.

A recipe class registers itself with :func:`register_recipe` when its module is imported;
:func:`get_recipe` and :func:`list_recipes` import the built-in recipes on first use (each
module is cheap, but this keeps ``import opsline`` and ``opsline --help`` from touching any
of them). A second class under a name already taken is an error, never a silent overwrite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, TypeVar

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from opsline.recipes.base import Recipe

R = TypeVar("R", bound="type[Recipe]")

_REGISTRY: dict[str, type[Recipe]] = {}

#: Modules whose import registers the recipes opsline ships.
BUILTIN_MODULES = (
    "opsline.recipes.house_price",
    "opsline.recipes.translation",
    "opsline.recipes.image_classification",
    "opsline.recipes.text_generation",
)
_builtins_loaded = False


def register_recipe(cls: R) -> R:
    """Class decorator adding a recipe to the registry.

    Raises:
        ValueError: the class sets no ``name``, or another class already has it.
    """
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__qualname__} must set a non-empty `name`")
    registered = _REGISTRY.get(name)
    if registered is not None and registered is not cls:
        raise ValueError(f"a recipe named {name!r} is already registered ({registered.__module__})")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def list_recipes() -> list[str]:
    """Names of all registered recipes, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def is_recipe(name: str) -> bool:
    """Whether a recipe named ``name`` is registered."""
    _load_builtins()
    return name in _REGISTRY


def recipe_class(name: str) -> type[Recipe]:
    """The class registered as ``name``; ``UsageError`` listing valid names otherwise."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"Unknown recipe {name!r}. Valid recipes: {', '.join(sorted(_REGISTRY)) or '(none)'}."
        ) from None


def get_recipe(name: str) -> Recipe:
    """An instance of the recipe ``name``; ``UsageError`` listing valid names otherwise."""
    return recipe_class(name)()
