"""build_trainer: honours the trainer config (epochs, fast_dev_run, profiler, seeding)."""

from __future__ import annotations

import pytest
import torch

from opsline.errors import UsageError
from opsline.training.trainer import build_trainer, profiler_reports, resolve_max_epochs
from tests.training.tiny import loaders, make_cfg, tiny_module


class Recorder:
    def __init__(self):
        self.calls = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((step, dict(metrics)))


def fit(cfg, tmp_path, default_max_epochs=3, **kwargs):
    trainer = build_trainer(cfg, default_max_epochs=default_max_epochs, work_dir=tmp_path, **kwargs)
    module = tiny_module()
    trainer.fit(module, *loaders())
    return trainer, module


def test_max_epochs_defaults_to_the_model_and_config_overrides(tmp_path):
    assert resolve_max_epochs(make_cfg().trainer, 9) == 9
    assert resolve_max_epochs(make_cfg(max_epochs=2).trainer, 9) == 2
    trainer, _ = fit(make_cfg(), tmp_path, default_max_epochs=3)
    assert trainer.current_epoch == 3
    trainer, _ = fit(make_cfg(max_epochs=1), tmp_path / "b", default_max_epochs=3)
    assert trainer.current_epoch == 1


def test_fast_dev_run_runs_one_batch(tmp_path):
    trainer, _ = fit(make_cfg(fast_dev_run=True), tmp_path, default_max_epochs=50)
    assert trainer.fast_dev_run and trainer.global_step == 1


def test_callback_logs_one_entry_per_epoch(tmp_path):
    run = Recorder()
    fit(make_cfg(), tmp_path, default_max_epochs=3, run=run)
    assert [step for step, _ in run.calls] == [0, 1, 2]
    for _, metrics in run.calls:
        assert {"train_loss", "val_loss"} <= set(metrics)
        assert all(isinstance(v, float) for v in metrics.values())
    # SGD on a noiseless linear problem: the loss goes down epoch over epoch.
    assert run.calls[-1][1]["train_loss"] < run.calls[0][1]["train_loss"]


def test_early_stopping_and_best_checkpoint(tmp_path):
    trainer, _ = fit(make_cfg(), tmp_path, default_max_epochs=3, patience=1)
    assert trainer.early_stopping_callback.patience == 1
    best = trainer.checkpoint_callback.best_model_path
    assert best.startswith(str(tmp_path)) and best.endswith(".ckpt")


@pytest.mark.parametrize("name", ["simple", "advanced"])
def test_profiler_writes_a_report(tmp_path, name):
    fit(make_cfg(profiler=name, max_epochs=1), tmp_path)
    reports = profiler_reports(tmp_path)
    assert reports and any(
        "run_training_epoch" in text or "training_step" in text for text in reports.values()
    )


def test_no_profiler_writes_nothing(tmp_path):
    fit(make_cfg(max_epochs=1), tmp_path)
    assert profiler_reports(tmp_path) == {}


def test_pytorch_profiler_is_built(tmp_path):
    from lightning.pytorch.profilers import PyTorchProfiler

    trainer = build_trainer(make_cfg(profiler="pytorch"), default_max_epochs=1, work_dir=tmp_path)
    assert isinstance(trainer.profiler, PyTorchProfiler)


def test_unknown_profiler_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="simple, advanced, pytorch"):
        build_trainer(make_cfg(profiler="fancy"), default_max_epochs=1, work_dir=tmp_path)


def test_progress_bar_follows_config(tmp_path):
    on = build_trainer(make_cfg(enable_progress_bar=True), default_max_epochs=1, work_dir=tmp_path)
    off = build_trainer(make_cfg(), default_max_epochs=1, work_dir=tmp_path)
    assert on.progress_bar_callback is not None and off.progress_bar_callback is None


def test_seeding_makes_initial_weights_reproducible(tmp_path):
    build_trainer(make_cfg(), default_max_epochs=1, work_dir=tmp_path)
    first = tiny_module().layer.weight.detach().clone()
    build_trainer(make_cfg(), default_max_epochs=1, work_dir=tmp_path)
    assert torch.equal(first, tiny_module().layer.weight)
