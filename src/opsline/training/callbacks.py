"""Lightning callbacks shared by recipes."""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch.callbacks import Callback


class RunMetricsCallback(Callback):
    """Send each epoch's metrics (``train_loss``, ``val_loss`` …) to a run, step = epoch.

    ``run`` is anything with ``log_metrics(metrics: dict, step: int)``, normally an
    ``opsline.tracking.runs.RunHandle``. Only epoch-level scalars are sent: per-step values
    (keys ending in ``_step``) would flood the tracking store for no insight.
    """

    def __init__(self, run: Any):
        super().__init__()
        self.run = run

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # Lightning runs the epoch's validation before this hook, so val_* is current.
        if trainer.sanity_checking:
            return
        metrics: dict[str, float] = {}
        for key, value in trainer.callback_metrics.items():
            if key.endswith("_step"):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                metrics[key.removesuffix("_epoch")] = number
        if metrics:
            self.run.log_metrics(metrics, step=int(trainer.current_epoch))
