"""The training skeleton every Lightning recipe shares, in one place.

What each recipe used to repeat around its own model: a scratch directory for checkpoints
and profiler reports (never the exported directory: checkpoints are pickles), wall and CPU
clocks, the Lightning ``Trainer`` from :func:`~opsline.training.trainer.build_trainer`, the
fit itself, the best checkpoint's weights reloaded, and the same figures logged to the run
and written into the model card::

    with TrainingSession(cfg, run, "house-price-mlp") as session:
        session.build_trainer(default_max_epochs=mcfg.max_epochs, patience=mcfg.patience)
        module = PriceRegressor(...)          # after build_trainer: seeded initial weights
        session.fit(module, train_loader, val_loader)
        result = session.finish()
    run.log_metrics(result.metrics(parameters=count_parameters(module.net)))
    write_card(out_dir, ..., training=result.card())

A model that does not train through Lightning (LightGBM, a closed-form probe) uses the
parts that still apply: a :class:`Stopwatch`, and :meth:`FitResult.metrics` /
:meth:`FitResult.card` for the same names in the run and the card.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # pragma: no cover - typing only
    from opsline.tracking.runs import TrainingRun


@dataclass
class Stopwatch:
    """Wall-clock and CPU seconds (all threads of this process) since it was made."""

    started: float = field(default_factory=time.perf_counter)
    cpu_started: float = field(default_factory=time.process_time)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    @property
    def cpu_seconds(self) -> float:
        return time.process_time() - self.cpu_started


def count_parameters(network: Any, trainable_only: bool = False) -> int:
    """Number of parameters of a torch module (only those that train, if asked)."""
    return int(
        sum(p.numel() for p in network.parameters() if p.requires_grad or not trainable_only)
    )


def best_epoch(checkpoint_path: str) -> int | None:
    """Epoch of a checkpoint written by ``build_trainer`` (``best-epoch=12.ckpt``), or None."""
    match = re.search(r"epoch=(\d+)", Path(checkpoint_path).name) if checkpoint_path else None
    return int(match.group(1)) if match else None


@dataclass
class FitResult:
    """What one training session did, in the names the run and the card use.

    Attributes:
        seconds, cpu_seconds: the whole session (data preparation inside it included).
        fit_seconds, fit_cpu_seconds: ``trainer.fit`` alone (0 when nothing was fitted).
        epochs: epochs Lightning counted (``trainer.current_epoch``); None without one.
        steps: optimizer steps (``trainer.global_step``); None without a trainer.
        best_checkpoint: path of the checkpoint whose weights were restored ("" if none;
            it is gone with the scratch directory, only its name is informative).
    """

    seconds: float
    cpu_seconds: float
    fit_seconds: float = 0.0
    fit_cpu_seconds: float = 0.0
    epochs: int | None = None
    steps: int | None = None
    best_checkpoint: str = ""

    @property
    def best_epoch(self) -> int | None:
        return best_epoch(self.best_checkpoint)

    def metrics(self, parameters: int | None = None, **extra: float) -> dict[str, float]:
        """The run's training figures: ``train_seconds``, ``train_cpu_seconds``,
        ``epochs_trained`` (with a trainer), ``best_epoch`` (when a checkpoint named one),
        ``parameters`` (when given), then ``extra``."""
        out: dict[str, float] = {
            "train_seconds": self.seconds,
            "train_cpu_seconds": self.cpu_seconds,
        }
        if self.epochs is not None:
            out["epochs_trained"] = self.epochs
        if self.best_epoch is not None:
            out["best_epoch"] = self.best_epoch
        if parameters is not None:
            out["parameters"] = parameters
        return {**out, **extra}

    def card(self, **extra: Any) -> dict[str, Any]:
        """The model card's ``training`` section: epochs (with a trainer), best epoch and
        checkpoint (when there was one), seconds (wall and CPU, rounded), then ``extra``."""
        out: dict[str, Any] = {} if self.epochs is None else {"epochs": self.epochs}
        out["seconds"] = round(self.seconds, 1)
        out["cpu_seconds"] = round(self.cpu_seconds, 1)
        if self.best_checkpoint:
            out["best_epoch"] = self.best_epoch
            out["best_checkpoint"] = Path(self.best_checkpoint).name
        return {**out, **extra}


class TrainingSession:
    """One Lightning training: scratch directory, clocks, trainer, fit, best weights.

    Use as a context manager; the scratch directory (checkpoints, profiler reports) exists
    inside the ``with`` block only. Call :meth:`build_trainer` (it seeds everything, so
    build the network after it), then :meth:`fit` (or fit some other way, e.g. a closed-form
    probe), then :meth:`finish`, which restores the best checkpoint's weights into the
    module, logs the profiler reports and stops the clocks.

    Args:
        cfg: the composed config (``cfg.trainer``, ``cfg.seed``).
        run: where epoch metrics and profiler reports go.
        name: prefix of the scratch directory (``opsline-<name>-…``).
        restore_best: reload the best checkpoint after the fit (False: keep the last
            weights, e.g. ``checkpoint=last``).
    """

    def __init__(self, cfg: Any, run: TrainingRun, name: str, *, restore_best: bool = True):
        self.cfg = cfg
        self.run = run
        self.name = name
        self.restore_best = restore_best
        self.clock = Stopwatch()
        self.trainer: Any = None
        self.module: Any = None
        self.result: FitResult | None = None
        self._fit_seconds = 0.0
        self._fit_cpu_seconds = 0.0
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def work_dir(self) -> Path:
        if self._scratch is None:
            raise RuntimeError("TrainingSession is used outside its `with` block")
        return Path(self._scratch.name)

    def __enter__(self) -> Self:
        self._scratch = tempfile.TemporaryDirectory(prefix=f"opsline-{self.name}-")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self.result is None and self.trainer is not None:
                self.finish()
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()
                self._scratch = None

    def build_trainer(self, *, default_max_epochs: int, **options: Any) -> Any:
        """The seeded Lightning ``Trainer`` (:func:`~opsline.training.trainer.build_trainer`
        with this session's scratch directory and run; ``options`` as there)."""
        from opsline.training.trainer import build_trainer

        self.trainer = build_trainer(
            self.cfg,
            default_max_epochs=default_max_epochs,
            work_dir=self.work_dir,
            run=self.run,
            **options,
        )
        return self.trainer

    def fit(self, module: Any, train_loader: Any, val_loader: Any = None) -> None:
        """``trainer.fit`` on the loaders, timed on its own."""
        if self.trainer is None:
            raise RuntimeError("call build_trainer() before fit()")
        self.module = module
        watch = Stopwatch()
        self.trainer.fit(module, train_loader, val_loader)
        self._fit_seconds += watch.seconds
        self._fit_cpu_seconds += watch.cpu_seconds

    def finish(self, module: Any = None) -> FitResult:
        """Restore the best checkpoint into ``module`` (default: the one fitted), log the
        profiler reports, stop the clocks; idempotent."""
        if self.result is not None:
            return self.result
        from opsline.training.trainer import finish_fit

        trainer = self.trainer
        best = ""
        if trainer is not None:
            best = finish_fit(
                trainer,
                module if module is not None else self.module,
                self.run,
                self.work_dir,
                restore_best=self.restore_best,
            )
        self.result = FitResult(
            seconds=self.clock.seconds,
            cpu_seconds=self.clock.cpu_seconds,
            fit_seconds=self._fit_seconds,
            fit_cpu_seconds=self._fit_cpu_seconds,
            epochs=int(trainer.current_epoch) if trainer is not None else None,
            steps=int(trainer.global_step) if trainer is not None else None,
            best_checkpoint=best or "",
        )
        return self.result
