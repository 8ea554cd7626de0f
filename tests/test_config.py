"""Config composition: short model/experiment names, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

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


# -- typed model settings (each recipe's model_schema, checked once at composition) ------


@pytest.mark.parametrize(
    ("recipe", "overrides", "sentence"),
    [
        ("house_price", ["model.lr=abc"], "model.lr must be a number, not 'abc' (str)."),
        ("house_price", ["model.hidden=1.5"], "model.hidden must be a list of integers, not 1.5"),
        ("house_price", ["model.batch_size=1.5"], "model.batch_size must be an integer, not 1.5"),
        ("house_price", ["model.loss=l1"], "model.loss must be one of mse, huber, not 'l1'"),
        (
            "house_price",
            ["+model.n_estimators=10"],
            "model.n_estimators is not a setting of the house_price model 'mlp'",
        ),
        ("house_price", ["model.name=svm"], "model.name='svm' is not a house_price model"),
        ("image_classification", ["model.fit=sgd"], "model.fit must be one of lightning, probe"),
        ("image_classification", ["model.patience=2.5"], "model.patience must be an integer or"),
        ("translation", ["model.quantize=maybe"], "model.quantize must be true or false"),
        ("text_generation", ["model.lora.r=big"], "model.lora.r must be an integer"),
        ("text_generation", ["+model.lora.rank=8"], "model.lora.rank is not a setting of"),
    ],
)
def test_wrong_model_settings_fail_at_composition(
    recipe: str, overrides: list[str], sentence: str
) -> None:
    with pytest.raises(UsageError) as error:
        load_config(recipe, overrides)
    message = str(error.value)
    assert message.startswith("Invalid config: ") and sentence in message
    assert message.count(". ") == 0 and message.endswith((".", ")."))  # one sentence
    assert error.value.exit_code == 2


def test_the_cli_exits_2_with_the_sentence(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "opsline", "train", "house_price", "model.lr=abc"],
        capture_output=True,
        text=True,
        env={**os.environ, "OPSLINE_HOME": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: Invalid config: model.lr must be a number, not 'abc' (str)."
    )


def _recipe_models() -> list[tuple[str, str]]:
    return [(r, m) for r in options("recipe") for m in options("model", r)]


@pytest.mark.parametrize(("recipe", "model"), _recipe_models())
def test_every_model_composes_into_its_schema(recipe: str, model: str) -> None:
    from opsline.config import schema_for, settings
    from opsline.recipes.registry import get_recipe

    cfg = load_config(recipe, [f"model={model}"])
    schema = schema_for(get_recipe(recipe), str(cfg.model.name))
    assert schema is not None, f"recipe {recipe} declares no model_schema"
    typed = settings(schema, cfg.model)
    assert typed.name == cfg.model.name


@pytest.mark.parametrize(
    ("recipe", "experiment"),
    [(r, e) for r in options("recipe") for e in options("experiment", r)],
)
def test_every_experiment_composes(recipe: str, experiment: str) -> None:
    load_config(recipe, [f"experiment={experiment}"])


def test_settings_widen_ints_and_fill_defaults() -> None:
    from opsline.config import settings
    from opsline.recipes.house_price.config import MLPConfig

    typed = settings(MLPConfig, {"name": "mlp", "lr": 1, "hidden": [8]})
    assert typed.lr == 1.0 and isinstance(typed.lr, float)
    assert typed.hidden == [8] and typed.batch_size == MLPConfig().batch_size
