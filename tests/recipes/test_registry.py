"""The recipe registry: built-ins load on first use, names are unique, lookups explain."""

from __future__ import annotations

import pytest

from opsline.errors import UsageError
from opsline.recipes import registry
from opsline.recipes.registry import get_recipe, is_recipe, list_recipes, register_recipe

BUILTINS = ["house_price", "image_classification", "text_generation", "translation"]


@pytest.fixture
def clean_registry():
    """Registrations made by a test are removed after it."""
    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


def test_builtins_are_listed_sorted() -> None:
    assert list_recipes() == sorted(list_recipes())
    assert set(BUILTINS) <= set(list_recipes())
    assert all(is_recipe(name) for name in BUILTINS)
    assert not is_recipe("nope")


def test_get_recipe_returns_an_instance_of_the_registered_class() -> None:
    recipe = get_recipe("house_price")
    assert recipe.name == "house_price"
    assert type(recipe) is registry.recipe_class("house_price")


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError, match=r"Unknown recipe 'nope'\. Valid recipes: house_price"):
        get_recipe("nope")


def test_a_duplicate_name_raises(clean_registry) -> None:
    first = type("First", (), {"name": "demo_recipe"})
    second = type("Second", (), {"name": "demo_recipe"})
    assert register_recipe(first) is first
    assert register_recipe(first) is first  # the same class again (a re-import) is fine
    with pytest.raises(ValueError, match="'demo_recipe' is already registered"):
        register_recipe(second)
    assert registry.recipe_class("demo_recipe") is first


def test_a_class_without_a_name_is_refused(clean_registry) -> None:
    with pytest.raises(ValueError, match="non-empty `name`"):
        register_recipe(type("Nameless", (), {}))
