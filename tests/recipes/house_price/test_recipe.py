"""The registered recipe: cheap import, config composition, training logs per epoch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opsline.errors import UsageError
from opsline.recipes.registry import list_recipes


def test_registered():
    assert "house_price" in list_recipes()


def test_import_is_cheap():
    code = (
        "import sys, opsline.recipes.house_price; "
        "print(sorted(m for m in ('torch', 'pandas', 'lightning', 'gradio', 'pandera', "
        "'lightgbm', 'matplotlib', 'numpy', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize(
    ("experiment", "batch_size", "lr"),
    [("baseline", 64, 3e-4), ("large_batch", 256, 6e-4), ("high_lr", 64, 3e-3)],
)
def test_experiments_compose(compose_config, experiment, batch_size, lr):
    cfg = compose_config(f"experiment=house_price/{experiment}")
    assert cfg.model.name == "mlp"
    assert cfg.model.batch_size == batch_size and cfg.model.lr == pytest.approx(lr)
    assert cfg.model.dropout == 0.2


def test_default_model_is_the_mlp_and_gbm_is_selectable(compose_config):
    assert compose_config().model.name == "mlp"
    assert compose_config("model=house_price/gbm").model.name == "gbm"


def test_unknown_model_is_a_usage_error(recipe, compose_config, dataset, tmp_path):
    cfg = compose_config("model=house_price/gbm", "model.name=svm")
    with pytest.raises(UsageError, match="mlp, gbm"):
        recipe.train(cfg, dataset, None, tmp_path)


def test_mlp_logs_train_and_val_loss_once_per_epoch(mlp_trained):
    _, run, _ = mlp_trained
    epochs_trained = next(m["epochs_trained"] for _, m in run.metrics if "epochs_trained" in m)
    for key in ("train_loss", "val_loss", "val_rmsle"):
        steps = [step for step, _ in run.epoch_entries(key)]
        assert steps == list(range(int(epochs_trained))), key
    # Early stopping worked: the best epoch is well before the last one.
    best = next(m["best_epoch"] for _, m in run.metrics if "best_epoch" in m)
    assert best < epochs_trained - 1


def test_gbm_logs_a_sparse_validation_curve(gbm_trained):
    _, run, _ = gbm_trained
    curve = run.epoch_entries("val_rmsle")
    assert 5 < len(curve) < 200
    assert curve[-1][1] < curve[0][1]


@pytest.mark.parametrize("trainer_override", ["trainer=debug", "trainer.fast_dev_run=true"])
def test_short_mlp_runs_export_a_loadable_model(
    recipe, compose_config, dataset, tmp_path, recording_run, trainer_override
):
    cfg = compose_config(trainer_override, "trainer.enable_progress_bar=false")
    run = recording_run()
    trained = recipe.train(cfg, dataset, run, tmp_path / "export")
    expected_epochs = 2 if trainer_override == "trainer=debug" else 1
    assert len(run.epoch_entries("train_loss")) == expected_epochs
    predictor = recipe.load_predictor(trained.model_dir)
    assert predictor.predict(recipe.sample_requests())[0].predicted_price > 0


def test_profiler_report_is_logged(recipe, compose_config, dataset, tmp_path, recording_run):
    cfg = compose_config("trainer=debug", "trainer.profiler=simple")
    run = recording_run()
    recipe.train(cfg, dataset, run, tmp_path / "export")
    [(name, text)] = run.texts.items()
    assert name.startswith("profiler/") and "run_training_epoch" in text
