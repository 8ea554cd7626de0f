"""Live servers for every served recipe, on tiny models from the recipes' own fixtures.

Shared by the fuzz test and the OpenAPI-examples test (session-scoped: each server starts
once). Each yields its base URL; settings from :func:`fuzz_settings` (the same settings build
the OpenAPI document the tests read, so the document is the live server's).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

from .conftest import live_server

KEY = "fuzz-key"


def sibling(recipe: str) -> Any:
    """tests/recipes/<recipe>/conftest.py, imported by path (no relative import reaches it)."""
    key = f"_{recipe}_conftest"
    if key not in sys.modules:
        path = Path(__file__).parents[1] / "recipes" / recipe / "conftest.py"
        spec = importlib.util.spec_from_file_location(key, path)
        assert spec is not None and spec.loader is not None
        sys.modules[key] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[key]


def fuzz_settings(recipe: str, **extra: Any) -> ServingSettings:
    return ServingSettings(
        recipe=recipe,
        ui=False,
        api_key=KEY,
        reload_interval_s=0,
        drift_interval_s=0,
        # Drift is then "not enough data" at once: the fuzzer calls /drift?refresh=true often,
        # and an Evidently report per call would be the whole time budget.
        drift_min_rows=10**9,
        max_batch_size=8,
        **extra,
    )


def tiny_generation_recipe() -> Any:
    return sibling("text_generation").TinyGenerationRecipe()


@pytest.fixture(scope="session")
def house_price_url(_trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("fuzz-hp") / "predictions.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(_trained_home))
        patch.setenv("OPSLINE_PREDICTION_LOG_URI", f"sqlite:///{log}")
        with live_server(create_app(fuzz_settings("house_price"))) as url:
            yield url


@pytest.fixture(scope="session")
def translation_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import torch

    torch.set_num_threads(1)
    # Positions for the longest request the schema allows (max_new_tokens 256), as the
    # recipe's real config has (512): the fixture's default 64 would fail valid requests.
    model_dir = sibling("translation").make_model_dir(
        tmp_path_factory.mktemp("fuzz-tr") / "model",
        ["Hej med dig.", "Hello there."] * 20,
        max_positions=512,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(tmp_path_factory.mktemp("fuzz-tr-home")))
        with live_server(create_app(fuzz_settings("translation", model_uri=str(model_dir)))) as url:
            yield url


@pytest.fixture(scope="session")
def text_generation_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import torch

    torch.set_num_threads(1)
    tg = sibling("text_generation")
    # A context that fits the longest request the schema allows (as SmolLM2's 2048 does);
    # the fixture's default 64 would refuse the documented example (a 422, rightly).
    model_dir = tg.build_tiny_lm(tmp_path_factory.mktemp("fuzz-lm") / "model", context_limit=512)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(tmp_path_factory.mktemp("fuzz-tg-home")))
        app = create_app(
            fuzz_settings("text_generation", model_uri=str(model_dir)),
            recipe=tiny_generation_recipe(),
        )
        with live_server(app) as url:
            yield url
        tg.close_engine(app)


@pytest.fixture(scope="session")
def image_classification_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from opsline import pipeline

    ic = sibling("image_classification")
    ic.require_grapevine()
    home = tmp_path_factory.mktemp("fuzz-ic-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        _, decision = pipeline.run("image_classification", ["data=grapevine", *ic.SMOKE])
        assert decision.promoted, decision.reason
        settings = fuzz_settings("image_classification", model_name="grapevine")
        with live_server(create_app(settings)) as url:
            yield url
