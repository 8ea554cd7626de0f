"""Sweep fixtures: a prepared dataset per test and configs with a test-specific space."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(scope="session")
def _prepared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from opsline import pipeline

    home = tmp_path_factory.mktemp("sweep-data-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        pipeline.prepare("house_price")
    return home / "data"


@pytest.fixture
def prepared_home(isolated_home: Path, _prepared_data: Path) -> Path:
    """This test's empty workspace plus a copy of the prepared house_price dataset."""
    shutil.copytree(_prepared_data, isolated_home / "data")
    return isolated_home


@pytest.fixture
def sweep_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict], Path]:
    """Call with a space for the MLP: a copy of configs/ using it (via OPSLINE_CONFIG_DIR)."""
    from opsline.config import config_dir

    def use(space: dict[str, Any]) -> Path:
        target = tmp_path / "configs"
        shutil.copytree(config_dir(), target)
        path = target / "recipe" / "house_price.yaml"
        data = yaml.safe_load(path.read_text())
        data["sweep"]["space"]["mlp"] = space
        # Hydra reads the package from the header comment, which yaml.dump would drop.
        path.write_text("# @package _global_\n" + yaml.safe_dump(data, sort_keys=False))
        monkeypatch.setenv("OPSLINE_CONFIG_DIR", str(target))
        return target

    return use
