"""Live training metrics: a Lightning callback writing ``metrics/training-<model>.prom``.

Every Lightning recipe gets :class:`TrainingTelemetry` from
:func:`opsline.training.trainer.build_trainer`. The file is rewritten at most every
``interval`` seconds while fitting, at every epoch end and when the fit ends (or fails), and
the server's ``/metrics`` includes it. Metrics (all labelled ``model``):

* ``opsline_training_steps_total`` — optimizer steps of the current fit;
* ``opsline_training_loss`` — loss of the latest training batch (un-scaled by gradient
  accumulation), ``opsline_validation_loss`` — latest ``val_loss`` the module logged;
* ``opsline_training_epoch`` (0-based) and ``opsline_training_epoch_progress`` (0..1);
* ``opsline_training_samples_per_second`` and ``opsline_training_tokens_per_second`` — over
  the batches since the previous write; tokens are counted only for batches that say how
  many there are (a mapping with ``attention_mask``, else ``input_ids``), so tabular and
  image recipes show samples/s only;
* ``opsline_training_running`` — 1 while fitting, 0 after;
* ``opsline_training_last_update_timestamp_seconds`` — when the file was written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from opsline.monitoring.textfile import metrics_path, write_registry

DEFAULT_INTERVAL = 2.0  # seconds between writes mid-epoch: live enough, cheap enough


def batch_size(batch: Any) -> int | None:
    """Rows in a batch: the first dimension of its first tensor (None if there is none)."""
    if hasattr(batch, "shape") and len(batch.shape) > 0:
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        values: Sequence[Any] = list(batch.values())
    elif isinstance(batch, (list, tuple)):
        values = batch
    else:
        return None
    for value in values:
        rows = batch_size(value)
        if rows is not None:
            return rows
    return None


def batch_tokens(batch: Any) -> Any:
    """Tokens in a batch of text: non-padding tokens when it has an ``attention_mask`` (a
    0-d tensor, left on its device: reading it would wait for the GPU at every batch), all
    ``input_ids`` otherwise; None for batches that are not token mappings."""
    if not isinstance(batch, Mapping):
        return None
    mask = batch.get("attention_mask")
    if mask is not None and hasattr(mask, "sum"):
        return mask.sum()
    ids = batch.get("input_ids")
    if ids is not None and hasattr(ids, "numel"):
        return int(ids.numel())
    return None


class TrainingTelemetry(Callback):
    """Publish a fit's progress as Prometheus metrics in a textfile.

    Args:
        model: the ``model`` label (the registered model name).
        path: the ``.prom`` file; default ``<workspace>/metrics/training-<model>.prom``.
        interval: least seconds between two writes in the middle of an epoch.
    """

    def __init__(self, model: str, path: Path | None = None, interval: float = DEFAULT_INTERVAL):
        from prometheus_client import CollectorRegistry, Counter, Gauge

        super().__init__()
        self.model = model
        self.path = Path(path) if path is not None else metrics_path("training", model)
        self.interval = float(interval)
        self.registry = CollectorRegistry()
        r, labels = self.registry, ["model"]

        def gauge(name: str, doc: str) -> Any:
            return Gauge(name, doc, labels, registry=r).labels(model=model)

        self.steps = Counter(
            "opsline_training_steps", "Optimizer steps of the current fit.", labels, registry=r
        ).labels(model=model)
        self.loss = gauge("opsline_training_loss", "Loss of the latest training batch.")
        self.val_loss = gauge("opsline_validation_loss", "Latest validation loss (val_loss).")
        self.epoch = gauge("opsline_training_epoch", "Current epoch (0-based).")
        self.progress = gauge(
            "opsline_training_epoch_progress",
            "Fraction of the current epoch's training batches done (0..1).",
        )
        self.samples_per_second = gauge(
            "opsline_training_samples_per_second",
            "Training samples per second since the last update.",
        )
        self.tokens_per_second = gauge(
            "opsline_training_tokens_per_second",
            "Training tokens per second since the last update (text recipes only).",
        )
        self.running = gauge("opsline_training_running", "1 while fitting, 0 after.")
        self.updated = gauge(
            "opsline_training_last_update_timestamp_seconds",
            "Unix time this file was last written.",
        )
        # NaN, not 0, until the first value: a loss of 0 would read as a perfect model on the
        # dashboards; NaN is a gap in Prometheus/Grafana and "no data" on the UI page.
        self.loss.set(math.nan)
        self.val_loss.set(math.nan)
        self._last_write = 0.0
        self._window_start = 0.0
        self._samples = 0
        self._tokens: Any = 0  # an int, or a device tensor summed batch by batch
        self._counted_tokens = False
        self._pending_loss: Any = None  # latest batch loss, a tensor until written
        self._loss_scale = 1
        self._steps_seen = 0

    # -- writing ------------------------------------------------------------------------
    def _write(self, trainer: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.interval:
            return
        if not getattr(trainer, "is_global_zero", True):  # DDP: one writer, rank 0
            return
        if self._pending_loss is not None:  # read on the device only when written
            value = float(self._pending_loss) * self._loss_scale
            self._pending_loss = None
            if math.isfinite(value):
                self.loss.set(value)
        elapsed = now - self._window_start
        if elapsed > 0 and self._samples:
            self.samples_per_second.set(self._samples / elapsed)
            if self._counted_tokens:
                self.tokens_per_second.set(float(self._tokens) / elapsed)
        self._window_start, self._samples, self._tokens = now, 0, 0
        self.updated.set(time.time())
        write_registry(self.registry, self.path)
        self._last_write = now

    # -- Lightning hooks ----------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._steps_seen = int(trainer.global_step)
        self.running.set(1)
        self.epoch.set(int(trainer.current_epoch))
        self.progress.set(0)
        self._window_start = time.monotonic()
        self._write(trainer, force=True)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.epoch.set(int(trainer.current_epoch))
        self.progress.set(0)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        steps = int(trainer.global_step)
        if steps > self._steps_seen:
            self.steps.inc(steps - self._steps_seen)
            self._steps_seen = steps
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None and hasattr(loss, "detach"):
            # Lightning divides the loss by the accumulation factor before backward.
            self._pending_loss = loss.detach()
            self._loss_scale = int(trainer.accumulate_grad_batches or 1)
        self._samples += batch_size(batch) or 0
        tokens = batch_tokens(batch)
        if tokens is not None:
            self._tokens += tokens
            self._counted_tokens = True
        total = trainer.num_training_batches
        if isinstance(total, (int, float)) and math.isfinite(total) and total > 0:
            self.progress.set(min(1.0, (batch_idx + 1) / total))
        self._write(trainer)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val_loss")
        if value is not None:
            number = float(value)
            if math.isfinite(number):
                self.val_loss.set(number)
        self._write(trainer, force=True)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.progress.set(1)
        self._write(trainer, force=True)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.running.set(0)
        self._write(trainer, force=True)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.running.set(0)
        self._write(trainer, force=True)


def model_label(cfg: Any) -> str:
    """The registered model name for ``cfg`` (``Recipe.model_name``), so training metrics
    line up with the served model's name; the recipe name, or ``unknown`` for a bare
    trainer config (tests, notebooks)."""
    recipe_cfg = cfg.get("recipe") if hasattr(cfg, "get") else None
    name = recipe_cfg.get("name") if recipe_cfg is not None else None
    if not name:
        return "unknown"
    from opsline.errors import UsageError
    from opsline.recipes.registry import get_recipe

    try:
        return str(get_recipe(str(name)).model_name(cfg))
    except (UsageError, AttributeError, KeyError):
        return str(name)
