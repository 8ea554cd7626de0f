"""Search-space validation: every mistake is a UsageError (exit 2) naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsline.config import load_config
from opsline.errors import UsageError
from opsline.sweeps.space import hydra_value, load_spec, parse_param


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"type": "gaussian", "low": 0, "high": 1}, "unknown type 'gaussian'"),
        ({"type": "float", "low": 0.1, "high": 0.01}, "low (0.1) is greater than high (0.01)"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log scale needs low > 0"),
        ({"type": "int", "low": 1, "high": "ten"}, "high must be a finite number"),
        ({"type": "categorical", "choices": []}, "non-empty list of choices"),
        ({"type": "float", "low": 0, "high": 1, "lw": 3}, "unknown field(s) lw"),
    ],
)
def test_malformed_entries_name_the_key(spec: dict, reason: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_param("model.lr", spec)
    assert "'model.lr'" in str(error.value) and reason in str(error.value)


def test_keys_must_exist_in_the_composed_config() -> None:
    cfg = load_config("house_price", ["model=gbm"])  # the gbm has no model.lr
    cfg.sweep.space.gbm = {"model.lr": {"type": "float", "low": 0.1, "high": 0.2}}
    with pytest.raises(UsageError, match=r"'model\.lr': no such key"):
        load_spec(cfg, "house_price", False)


def test_the_shipped_spaces_are_valid() -> None:
    for model in ("mlp", "gbm"):
        spec = load_spec(load_config("house_price", [f"model={model}"]), "house_price", False)
        assert spec.direction == "minimize" and spec.metric == "val_rmsle" and spec.space
    # smollm2: the reference's lr/batch/warmup/decay/accumulation search; tiny: a smaller one
    expected = {
        "smollm2": {
            "model.lr",
            "model.batch_size",
            "model.warmup_steps",
            "model.weight_decay",
            "trainer.accumulate_grad_batches",
        },
        "tiny": {"model.lr", "model.batch_size", "model.warmup_steps"},
    }
    for model, keys in expected.items():
        spec = load_spec(
            load_config("text_generation", [f"model={model}"]), "text_generation", False
        )
        assert spec.direction == "minimize" and spec.metric == "val_perplexity"
        assert spec.prune_on == "steps/val_loss" and set(spec.space) == keys


def test_values_become_hydra_overrides() -> None:
    assert hydra_value([256, 128]) == "[256,128]"
    assert hydra_value(3e-4) == "0.0003" and hydra_value(True) == "true"
    assert hydra_value("huber") == "huber" and hydra_value("a b") == "'a b'"


def test_cli_exits_2_naming_the_key(isolated_home: Path, sweep_space) -> None:
    sweep_space({"model.lr": {"type": "float", "low": 0.1, "high": 0.01}})
    result = subprocess.run(
        [sys.executable, "-m", "opsline", "sweep", "house_price", "--trials", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OPSLINE_HOME": str(isolated_home)},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: Invalid sweep space key 'model.lr': low (0.1) is greater than high (0.01)."
    )


def test_pruning_hook_reports_and_stops() -> None:
    from opsline.sweeps.objective import PruningHook, TrialStopped

    class Trial:
        def __init__(self):
            self.reported: list = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return len(self.reported) >= 2

    trial = Trial()
    hook = PruningHook(trial, "val_loss")
    hook(0, {"train_loss": 1.0})  # no val_loss: nothing to report
    hook(0, {"val_loss": 0.9})
    with pytest.raises(TrialStopped, match="step 1"):
        hook(1, {"val_loss": 0.8})
    assert trial.reported == [(0, 0.9), (1, 0.8)]
