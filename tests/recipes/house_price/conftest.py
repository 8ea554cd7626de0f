"""Shared fixtures: the real Ames split, a recording run double, and trained models.

Models are trained once per session (GBM ~1 s, MLP ~10 s on 2 cores) and shared by the
behaviour and quality tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"


def compose_config(*overrides: str):
    """The composed Hydra config for house_price with ``overrides``."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("config", overrides=["recipe=house_price", *overrides])


class RecordingRun:
    """Test double for ``RunHandle``: records what a recipe logs."""

    def __init__(self):
        self.metrics: list[tuple[int | None, dict[str, float]]] = []
        self.texts: dict[str, str] = {}
        self.dicts: dict[str, dict] = {}

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, {k: float(v) for k, v in metrics.items()}))

    def log_text(self, text, artifact_file):
        self.texts[artifact_file] = text

    def log_dict(self, data, artifact_file):
        self.dicts[artifact_file] = data

    def log_figure(self, figure, artifact_file):
        pass

    def epoch_entries(self, key: str) -> list[tuple[int, float]]:
        return [(step, m[key]) for step, m in self.metrics if key in m and step is not None]


@pytest.fixture(name="compose_config", scope="session")
def compose_config_fixture():
    return compose_config


@pytest.fixture(scope="session")
def recording_run():
    return RecordingRun


@pytest.fixture(scope="session")
def recipe():
    from opsline.recipes.registry import get_recipe

    return get_recipe("house_price")


@pytest.fixture(scope="session")
def cfg():
    return compose_config("trainer.enable_progress_bar=false")


@pytest.fixture(scope="session")
def splits(recipe, cfg):
    return recipe.prepare(cfg)


@pytest.fixture(scope="session")
def dataset(splits, tmp_path_factory):
    from opsline.data.dataset import write_dataset

    return write_dataset(splits, tmp_path_factory.mktemp("hp-data"), "house_price")


def _train(recipe, dataset, tmp_path_factory, *overrides):
    cfg = compose_config("trainer.enable_progress_bar=false", *overrides)
    run = RecordingRun()
    trained = recipe.train(cfg, dataset, run, tmp_path_factory.mktemp("hp-model") / "export")
    return trained, run, cfg


@pytest.fixture(scope="session")
def gbm_trained(recipe, dataset, tmp_path_factory):
    return _train(recipe, dataset, tmp_path_factory, "model=house_price/gbm")


@pytest.fixture(scope="session")
def mlp_trained(recipe, dataset, tmp_path_factory):
    return _train(recipe, dataset, tmp_path_factory, "model=house_price/mlp")


@pytest.fixture(scope="session")
def gbm_predictor(recipe, gbm_trained):
    return recipe.load_predictor(gbm_trained[0].model_dir)


@pytest.fixture(scope="session")
def mlp_predictor(recipe, mlp_trained):
    return recipe.load_predictor(mlp_trained[0].model_dir)
