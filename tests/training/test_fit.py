"""TrainingSession: the training skeleton the recipes share (scratch dir, clocks, trainer,
fit, best weights, the figures for the run and the card)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from opsline.training.fit import (
    FitResult,
    Stopwatch,
    TrainingSession,
    best_epoch,
    count_parameters,
)
from tests.training.tiny import loaders, make_cfg, tiny_module


class Recorder:
    def __init__(self):
        self.metrics: list[tuple[int | None, dict[str, float]]] = []
        self.texts: dict[str, str] = {}

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_text(self, text, artifact_file):
        self.texts[artifact_file] = text

    def log_dict(self, data, artifact_file):
        pass


def test_session_fits_restores_the_best_weights_and_cleans_up() -> None:
    run = Recorder()
    with TrainingSession(make_cfg(), run, "test") as session:
        scratch = session.work_dir
        session.build_trainer(default_max_epochs=3)
        module = tiny_module()
        session.fit(module, *loaders())
        result = session.finish()
        checkpoint = torch.load(result.best_checkpoint, weights_only=True)["state_dict"]
        assert torch.equal(module.layer.weight, checkpoint["layer.weight"])
        assert session.finish() is result  # idempotent
    assert not scratch.exists()  # checkpoints (pickles) never outlive the session
    assert scratch.name.startswith("opsline-test-")
    assert result.epochs == 3 and result.steps == 12
    assert result.best_epoch in (0, 1, 2)
    assert 0 < result.fit_seconds <= result.seconds
    # Epoch metrics went to the run through the trainer's callback, one point per epoch.
    assert [step for step, m in run.metrics if "val_loss" in m] == [0, 1, 2]


def test_metrics_and_card_use_the_names_every_recipe_logs() -> None:
    result = FitResult(
        seconds=12.345, cpu_seconds=20.0, epochs=4, steps=40, best_checkpoint="/x/best-epoch=2.ckpt"
    )
    assert result.metrics(parameters=99, decode_seconds=1.0) == {
        "train_seconds": 12.345,
        "train_cpu_seconds": 20.0,
        "epochs_trained": 4,
        "best_epoch": 2,
        "parameters": 99,
        "decode_seconds": 1.0,
    }
    assert result.card(threads=2) == {
        "epochs": 4,
        "seconds": 12.3,
        "cpu_seconds": 20.0,
        "best_epoch": 2,
        "best_checkpoint": "best-epoch=2.ckpt",
        "threads": 2,
    }


def test_a_model_without_a_trainer_reports_time_only() -> None:
    """LightGBM (and any non-Lightning fit): no epochs, no checkpoint in run or card."""
    clock = Stopwatch()
    result = FitResult(seconds=clock.seconds, cpu_seconds=clock.cpu_seconds)
    assert set(result.metrics(best_iteration=7)) == {
        "train_seconds",
        "train_cpu_seconds",
        "best_iteration",
    }
    assert set(result.card()) == {"seconds", "cpu_seconds"}


def test_session_without_fit_restores_nothing() -> None:
    """A closed-form fit (image_classification's probe) builds the trainer, never fits."""
    with TrainingSession(make_cfg(), Recorder(), "probe") as session:
        session.build_trainer(default_max_epochs=3)
        module = tiny_module()
        before = module.layer.weight.detach().clone()
        result = session.finish(module)
    assert result.best_checkpoint == "" and result.epochs == 0 and result.fit_seconds == 0
    assert torch.equal(module.layer.weight, before)


def test_fit_before_build_trainer_is_a_bug() -> None:
    with TrainingSession(make_cfg(), Recorder(), "x") as session, pytest.raises(RuntimeError):
        session.fit(tiny_module(), *loaders())


def test_helpers() -> None:
    assert best_epoch("best-epoch=12.ckpt") == 12
    assert best_epoch("") is None and best_epoch(str(Path("last.ckpt"))) is None
    assert count_parameters(nn.Linear(3, 1)) == 4
    frozen = nn.Linear(3, 1)
    frozen.bias.requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == 3
