"""Build a Lightning ``Trainer`` from the ``trainer`` config group.

Every recipe trains through :func:`build_trainer`, so seeding, early stopping, checkpoints,
progress bar and profiling behave the same everywhere and are chosen in one place
(``configs/trainer/*.yaml`` plus command-line overrides such as ``trainer.profiler=simple``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opsline.errors import UsageError

PROFILERS = ("simple", "advanced", "pytorch")
PROFILE_FILENAME = "profile"  # Lightning writes <stage>-profile.txt under the profiler dir


def resolve_max_epochs(trainer_cfg: Any, default_max_epochs: int) -> int:
    """``trainer.max_epochs`` when set, otherwise the model config's ``max_epochs``."""
    value = trainer_cfg.get("max_epochs")
    return int(default_max_epochs if value is None else value)


def build_profiler(name: str | None, dirpath: Path) -> Any:
    """A Lightning profiler by name (``None`` = no profiling), writing under ``dirpath``."""
    if name in (None, "", "none", False):
        return None
    if name not in PROFILERS:
        raise UsageError(
            f"Unknown trainer.profiler {name!r}. Valid profilers: {', '.join(PROFILERS)} (or null)."
        )
    from lightning.pytorch import profilers

    dirpath.mkdir(parents=True, exist_ok=True)
    cls = {
        "simple": profilers.SimpleProfiler,
        "advanced": profilers.AdvancedProfiler,
        "pytorch": profilers.PyTorchProfiler,
    }[name]
    return cls(dirpath=dirpath, filename=PROFILE_FILENAME)


def profiler_reports(work_dir: Path) -> dict[str, str]:
    """Text reports the profiler wrote during training: file name -> contents."""
    root = Path(work_dir) / "profiler"
    if not root.exists():
        return {}
    return {p.name: p.read_text(errors="replace") for p in sorted(root.glob("*.txt"))}


def finish_fit(
    trainer: Any, module: Any, run: Any, work_dir: Path, restore_best: bool = True
) -> str:
    """After ``trainer.fit``: reload the best checkpoint's weights and log profiler reports.

    Returns the best checkpoint's path ("" if none was written). Checkpoints are our own,
    just written; ``weights_only=True`` still refuses arbitrary pickled objects.
    """
    import torch

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    # Only rank 0 saved the checkpoint (on its own node), and only rank 0's weights are used.
    if restore_best and best and getattr(trainer, "is_global_zero", True):
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    for name, text in profiler_reports(Path(work_dir)).items():
        run.log_text(text, f"profiler/{name}")
    return best


def _drop_log_lines(logger_name: str, prefix: str) -> None:
    """Hide log records starting with ``prefix`` from ``logger_name`` (idempotent)."""
    import logging

    logger = logging.getLogger(logger_name)
    if not any(getattr(f, "opsline_prefix", None) == prefix for f in logger.filters):

        def keep(record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith(prefix)

        keep.opsline_prefix = prefix  # type: ignore[attr-defined]
        logger.addFilter(keep)


def build_trainer(
    cfg: Any,
    *,
    default_max_epochs: int,
    work_dir: Path,
    patience: int | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    run: Any = None,
    callbacks: Sequence[Any] = (),
    model_name: str | None = None,
    checkpoint: bool = True,
) -> Any:
    """A seeded ``lightning.pytorch.Trainer`` configured from ``cfg.trainer``.

    Args:
        cfg: the full config; uses ``cfg.trainer`` and ``cfg.seed``.
        default_max_epochs: the model's ``max_epochs``, used when ``trainer.max_epochs``
            is null.
        work_dir: scratch directory for checkpoints and profiler reports. Checkpoints are
            pickles, so this must not be the exported model directory.
        patience: epochs without improvement of ``monitor`` before stopping (None = never).
        monitor, mode: the metric early stopping and checkpointing watch.
        run: a ``RunHandle`` (anything with ``log_metrics(dict, step)``); if given, epoch
            metrics are sent to it by :class:`~opsline.training.callbacks.RunMetricsCallback`.
        callbacks: extra Lightning callbacks.
        checkpoint: keep the best checkpoint by ``monitor``; False writes none (a fine-tuned
            LM's checkpoint with optimizer state is gigabytes per validation).
        model_name: the ``model`` label of the live training metrics
            (:class:`~opsline.monitoring.training.TrainingTelemetry`); None = the recipe's
            ``model_name(cfg)``.

    Seeds Python, NumPy and torch with ``cfg.seed`` before returning, so build the model
    after calling this for reproducible initial weights.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from opsline.monitoring.training import TrainingTelemetry, model_label
    from opsline.training import faults
    from opsline.training.callbacks import RunMetricsCallback

    tcfg = cfg.trainer
    pl.seed_everything(int(cfg.get("seed", 42)), workers=True, verbose=False)
    # Small in-memory tabular batches: worker processes would cost more than they save.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # Upstream noise a user can do nothing about: torch's pytree deprecation inside Lightning
    # and Lightning's advert for its cloud logger (we log to MLflow).
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
    _drop_log_lines("lightning.pytorch.utilities.rank_zero", "💡 Tip")
    work_dir = Path(work_dir)
    all_callbacks: list[Any] = []
    if checkpoint:
        all_callbacks.append(
            ModelCheckpoint(
                dirpath=work_dir / "checkpoints",
                filename="best-{epoch}",
                monitor=monitor,
                mode=mode,
                save_top_k=1,
                save_last=False,
            )
        )
    if patience is not None:
        all_callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(patience)))
    if run is not None:
        all_callbacks.append(RunMetricsCallback(run))
    all_callbacks.extend(callbacks)
    all_callbacks.extend(faults.from_env())  # test-only, inactive unless its env var is set
    # Live progress for Prometheus (<workspace>/metrics/training-<model>.prom).
    all_callbacks.append(TrainingTelemetry(model_name or model_label(cfg)))
    fast_dev_run = tcfg.get("fast_dev_run", False)
    return pl.Trainer(
        accelerator=tcfg.get("accelerator", "cpu"),
        devices=tcfg.get("devices", 1),
        num_nodes=int(tcfg.get("num_nodes") or 1),
        strategy=build_strategy(tcfg),
        precision=tcfg.get("precision", "32-true"),
        deterministic=bool(tcfg.get("deterministic", False)),
        max_epochs=resolve_max_epochs(tcfg, default_max_epochs),
        fast_dev_run=fast_dev_run if isinstance(fast_dev_run, int) else bool(fast_dev_run),
        enable_progress_bar=bool(tcfg.get("enable_progress_bar", True)),
        enable_model_summary=bool(tcfg.get("enable_progress_bar", True)),
        profiler=build_profiler(tcfg.get("profiler"), work_dir / "profiler"),
        callbacks=all_callbacks,
        logger=False,  # metrics go to MLflow through RunMetricsCallback, not to files
        default_root_dir=work_dir,
        log_every_n_steps=1,
        enable_checkpointing=checkpoint,
        **budget(tcfg),
    )


def build_strategy(trainer_cfg: Any) -> Any:
    """``trainer.strategy``, with ``ddp`` built as a ``DDPStrategy`` so its process-group
    backend (``trainer.process_group_backend``: null = gloo on CPU, nccl on GPU) and
    timeout (``trainer.ddp_timeout_seconds``: how long a rank waits for a silent peer
    before failing) come from config, and so rank 0 of a world opsline launched gets the
    environment that says so (:mod:`opsline.training.distributed`)."""
    name = trainer_cfg.get("strategy", "auto")
    if name != "ddp":
        return name
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy

    from opsline.training.distributed import before_rendezvous, cluster_environment

    timeout = float(trainer_cfg.get("ddp_timeout_seconds") or 1800)

    class OpslineDDP(DDPStrategy):
        def setup_distributed(self) -> None:
            before_rendezvous(timeout)  # rank 0 fails fast if a rank died before joining
            super().setup_distributed()

    return OpslineDDP(
        cluster_environment=cluster_environment(),
        process_group_backend=trainer_cfg.get("process_group_backend") or None,
        timeout=timedelta(seconds=timeout),
    )


# Optional step/time budgets (``trainer.max_steps=200``, ``trainer.max_time=00:00:15:00`` …);
# unset or null keys keep Lightning's defaults.
BUDGET_KEYS = (
    "max_steps",
    "max_time",
    "val_check_interval",
    "limit_train_batches",
    "limit_val_batches",
    "accumulate_grad_batches",
    "num_sanity_val_steps",
)


def budget(trainer_cfg: Any) -> dict[str, Any]:
    """The budget keys set in ``trainer_cfg``, as ``pl.Trainer`` keyword arguments."""
    kwargs = {key: trainer_cfg.get(key) for key in BUDGET_KEYS if trainer_cfg.get(key) is not None}
    if isinstance(kwargs.get("val_check_interval"), int):
        # An integer interval counts training batches across epochs, so it may exceed one
        # epoch (a step-budgeted fine-tune); Lightning needs this to allow that.
        kwargs["check_val_every_n_epoch"] = None
    return kwargs
