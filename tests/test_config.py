"""Config composition: short model/experiment names, and clear errors for bad ones."""

from __future__ import annotations

import pytest

from opsline.config import load_config, options
from opsline.errors import UsageError


def test_recipe_default_model_and_cli_override() -> None:
    assert load_config("house_price").model.name == "mlp"
    assert load_config("house_price", ["model=gbm"]).model.name == "gbm"


def test_experiment_files_change_hyperparameters() -> None:
    baseline = load_config("house_price", ["experiment=baseline"]).model
    high_lr = load_config("house_price", ["experiment=high_lr"]).model
    large_batch = load_config("house_price", ["experiment=large_batch"]).model
    assert high_lr.lr > baseline.lr
    assert large_batch.batch_size > baseline.batch_size


def test_command_line_beats_experiment() -> None:
    cfg = load_config("house_price", ["experiment=high_lr", "model.lr=0.5"])
    assert cfg.model.lr == 0.5


def test_trainer_group() -> None:
    assert load_config("house_price", ["trainer=debug"]).trainer.max_epochs == 2
    assert load_config("house_price", ["trainer=gpu"]).trainer.accelerator == "gpu"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["experiment=nope"], "Valid experiments: baseline, high_lr, large_batch"),
        (["model=nope"], "Valid models: gbm, mlp"),
        (["trainer=tpu"], "Valid trainers: cpu, ddp, debug, gpu"),
        (["no_such_key=1"], "no_such_key"),
        (["lonely"], "key=value"),
    ],
)
def test_bad_overrides_name_the_problem(overrides: list[str], expected: str) -> None:
    with pytest.raises(UsageError, match=expected) as error:
        load_config("house_price", overrides)
    assert error.value.exit_code == 2


def test_unknown_recipe_lists_valid_ones() -> None:
    with pytest.raises(UsageError, match="Valid recipes: house_price"):
        load_config("nope")


def test_options_are_per_recipe() -> None:
    assert options("model", "house_price") == ["gbm", "mlp"]
