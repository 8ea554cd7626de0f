"""Sweep fixtures: configs with a test-specific space (the prepared dataset per test is
``prepared_home``, in tests/conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


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
