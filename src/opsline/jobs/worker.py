"""The worker process of one HTTP job: ``python -m opsline.jobs.worker JOB_ID``.

It loads the job from ``$OPSLINE_HOME/jobs.db``, sends everything it prints (stdout, stderr
and logging, including output of C extensions) to the job's log file, runs
:func:`opsline.pipeline.train` or :func:`opsline.pipeline.evaluate` with the job's overrides,
and records progress, metrics, the model version and the outcome in the job row.

Progress is stage-level (preparing → validating → training → evaluating → registering →
done) plus per-epoch metrics while training; the epoch's share of the bar is
``epoch / max_epochs`` (early stopping may end training before the bar is full).

SIGTERM (sent by ``DELETE /jobs/{id}``) raises :class:`Terminated` in the main thread, so
the MLflow run is closed as FAILED and the temporary files are removed before exiting.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import traceback
from typing import Any

from opsline.jobs.store import Job, JobStore, now
from opsline.workspace import home

log = logging.getLogger("opsline.jobs.worker")

# Share of the progress bar at the start of each stage; training fills 0.10 → 0.85.
STAGES = {
    "preparing": 0.02,
    "validating": 0.05,
    "training": 0.10,
    "evaluating": 0.85,
    "registering": 0.95,
    "loading model": 0.10,
    "promoting": 0.98,
}
TRAINING_SPAN = (0.10, 0.85)
FLUSH_SECONDS = 0.5  # per-epoch metrics are written at most this often (and at stage ends)


class Terminated(BaseException):
    """SIGTERM arrived: the job was cancelled (or the machine is shutting down)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def redirect_output(log_path: str) -> None:
    """Point file descriptors 1 and 2 at the job's log (append), then logging at stderr."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # These stay open for the life of the process, as the original streams would.
    sys.stdout = open(  # noqa: SIM115 (replaces the process stream; closing it would end logging)
        1,
        "w",
        buffering=1,
        encoding="utf-8",
        errors="replace",
        closefd=False,
    )
    sys.stderr = open(  # noqa: SIM115 (as above)
        2,
        "w",
        buffering=1,
        encoding="utf-8",
        errors="replace",
        closefd=False,
    )
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


class Reporter:
    """Turns pipeline callbacks into job-row updates (throttled for per-epoch metrics)."""

    def __init__(self, store: JobStore, job_id: str, planned_steps: int | None = None):
        self.store = store
        self.job_id = job_id
        self.planned_steps = planned_steps
        self._pending: list[dict[str, float]] = []
        self._last_flush = 0.0

    def say(self, message: str) -> None:
        print(message, flush=True)
        self._safe(self.store.update, self.job_id, only_if=("running",), message=message)

    def stage(self, name: str) -> None:
        self.flush()
        print(f"[job] stage: {name}", flush=True)
        self._safe(
            self.store.update,
            self.job_id,
            only_if=("running",),
            message=name,
            progress=STAGES.get(name, 0.0),
        )

    def epoch(self, step: int, metrics: dict[str, float]) -> None:
        self._pending.append({"step": step, **{k: float(v) for k, v in metrics.items()}})
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        entries, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        last = entries[-1]["step"]
        progress = None
        if self.planned_steps:
            low, high = TRAINING_SPAN
            progress = low + (high - low) * min(1.0, last / self.planned_steps)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in entries[-1].items() if k != "step")
        message = (
            f"training: step {last}"
            + (f"/{self.planned_steps}" if self.planned_steps else "")
            + (f" ({shown})" if shown else "")
        )
        self._safe(self.store.add_history, self.job_id, entries, progress, message)

    @staticmethod
    def _safe(fn: Any, *args: Any, **kwargs: Any) -> None:
        # Progress is a courtesy: a locked or slow job table must never fail the training.
        try:
            fn(*args, **kwargs)
        except Exception:  # pragma: no cover - defensive
            log.warning("Could not record job progress", exc_info=True)


def _planned_steps(cfg: Any) -> int | None:
    """Epochs (or boosting rounds, or optimizer steps) the run may take at most, if the
    config says. A step budget comes first: recipes trained in steps (text generation)
    report their progress per global step, not per epoch."""
    for value in (
        cfg.trainer.get("max_steps"),
        cfg.trainer.get("max_epochs"),
        cfg.model.get("max_epochs"),
        cfg.model.get("n_estimators"),
    ):
        if value and int(value) > 0:  # Lightning's "no limit" is -1
            return int(value)
    return None


def _job_overrides(given: list[str], cfg: Any) -> list[str]:
    """The job's overrides, plus no progress bar: its carriage returns would fill the log."""
    overrides = list(given)
    user_set = any(o.lstrip("+").startswith("trainer.enable_progress_bar=") for o in overrides)
    if not user_set and cfg.get("trainer") is not None and cfg.trainer.get("enable_progress_bar"):
        overrides.append("trainer.enable_progress_bar=false")
    return overrides


def run_train(store: JobStore, job: Job) -> dict[str, Any]:
    from opsline import pipeline
    from opsline.config import load_config
    from opsline.data.dataset import load_dataset
    from opsline.errors import NoDatasetError
    from opsline.recipes.registry import get_recipe
    from opsline.workspace import data_dir

    cfg = load_config(job.recipe, job.overrides)
    name = get_recipe(job.recipe).model_name(cfg)  # registered model and dataset folder
    overrides = _job_overrides(job.overrides, cfg)
    reporter = Reporter(store, job.id, _planned_steps(cfg))
    try:
        load_dataset(data_dir(name), job.recipe)
    except NoDatasetError:  # a fresh workspace: prepare first, as `opsline run` would
        reporter.stage("preparing")
        dataset = pipeline.prepare(job.recipe, overrides)
        reporter.say(f"Prepared {job.recipe} data {dataset.version[:12]}.")
    result = pipeline.train(
        job.recipe, overrides, say=reporter.say, stage=reporter.stage, on_epoch=reporter.epoch
    )
    reporter.flush()
    return {
        "metrics": result.metrics,
        "model_name": name,
        "model_version": result.version,
        "message": f"registered {name} version {result.version} ({result.kind})",
    }


FEEDBACK_OVERRIDE = "data.include_feedback=true"


def run_retrain(store: JobStore, job: Job) -> dict[str, Any]:
    """The retrain loop's job: prepare with the labelled production rows, train, register,
    then let the promotion gate decide; the outcome goes into the loop's action record and
    onto the new version's tags."""
    from opsline import pipeline
    from opsline.config import load_config
    from opsline.jobs.actions import FAILED, NOT_PROMOTED, PROMOTED, ActionLog
    from opsline.recipes.registry import get_recipe
    from opsline.tracking.registry import tag_version

    overrides = list(job.overrides)
    if FEEDBACK_OVERRIDE not in overrides:
        overrides.append(FEEDBACK_OVERRIDE)
    cfg = load_config(job.recipe, overrides)
    name = get_recipe(job.recipe).model_name(cfg)
    overrides = _job_overrides(overrides, cfg)
    actions = ActionLog(store.root)
    action = actions.for_job(job.id)
    trigger = action.trigger if action is not None else "manual"
    reporter = Reporter(store, job.id, _planned_steps(cfg))
    try:
        reporter.stage("preparing")
        dataset = pipeline.prepare(job.recipe, overrides, say=reporter.say)
        reporter.say(f"Prepared {job.recipe} data {dataset.version[:12]} with feedback rows.")
        result = pipeline.train(
            job.recipe,
            overrides,
            say=reporter.say,
            stage=reporter.stage,
            on_epoch=reporter.epoch,
            tags={"retrain.trigger": trigger, "retrain.job_id": job.id},
        )
        reporter.flush()
        if action is not None:  # before the gate: a death after it can still be settled
            actions.note_candidate(action.id, str(result.version))
        reporter.stage("promoting")
        decision = pipeline.promote(job.recipe, str(result.version), overrides=overrides)
    except BaseException as error:
        if action is not None:
            actions.finish(action.id, FAILED, f"{type(error).__name__}: {error}")
        raise
    # The record is closed right after the alias moved, before anything slower (the version
    # tags). Two stores cannot commit together: if the worker dies in between,
    # opsline.jobs.settle reads the alias and records the promotion anyway.
    if action is not None:
        actions.finish(
            action.id,
            PROMOTED if decision.promoted else NOT_PROMOTED,
            decision.reason,
            new_version=str(result.version),
            old_version=decision.previous,
        )
    verdict = "promoted" if decision.promoted else "not promoted"
    tag_version(
        name,
        str(result.version),
        {
            "retrain.trigger": trigger,
            "retrain.job_id": job.id,
            "retrain.gate": f"{verdict}: {decision.reason}",
        },
        cfg.tracking.uri,
    )
    return {
        "metrics": {**result.metrics, "promoted": float(decision.promoted)},
        "model_name": name,
        "model_version": result.version,
        "message": f"registered {name} version {result.version}; {verdict} ({decision.reason})",
    }


def run_evaluate(store: JobStore, job: Job) -> dict[str, Any]:
    from opsline import pipeline
    from opsline.config import load_config
    from opsline.recipes.registry import get_recipe
    from opsline.tracking.registry import resolve_model

    cfg = load_config(job.recipe, job.overrides)
    name = get_recipe(job.recipe).model_name(cfg)
    reporter = Reporter(store, job.id)
    reporter.stage("loading model")
    ref = resolve_model(
        job.recipe, job.model or f"models:/{name}@{cfg.promotion.alias}", cfg.tracking.uri
    )
    label = f"{ref.name} version {ref.version}" if ref.version else str(job.model or ref.local_dir)
    reporter.say(f"Evaluating {label} on the test split ...")
    reporter.stage("evaluating")
    metrics = pipeline.evaluate(job.recipe, str(ref.local_dir), job.overrides)
    print("\n".join(f"{k}: {v:.6g}" for k, v in metrics.items()), flush=True)
    return {
        "metrics": metrics,
        "model_name": ref.name if ref.version else None,
        "model_version": ref.version,
        "message": f"evaluated {label}",
    }


def run_job(store: JobStore, job_id: str) -> int:
    """Run one job to its end and record the outcome; returns the process exit code."""
    from opsline.errors import OpslineError

    job = store.get(job_id)
    if job is None:
        print(f"No job {job_id!r} in {store.path}.", file=sys.stderr)
        return 2
    redirect_output(job.log_path)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if not store.update(
        job_id,
        only_if=("queued",),
        status="running",
        started_at=now(),
        pid=os.getpid(),
        message="starting",
    ):
        print(f"[job] {job_id} is no longer queued ({store.get(job_id).status}); not started.")
        return 0
    print(
        f"[job] {job.kind} {job.recipe} {' '.join(job.overrides)} (pid {os.getpid()}, "
        f"workspace {store.root})",
        flush=True,
    )
    try:
        runner = {"train": run_train, "retrain": run_retrain}.get(job.kind, run_evaluate)
        outcome = runner(store, job)
    except Terminated:
        print("[job] terminated (SIGTERM)", flush=True)
        # A cancel has already set ``cancelled``; otherwise someone else stopped us.
        store.finish(job_id, "failed", error="The worker was terminated (SIGTERM).")
        return 128 + signal.SIGTERM
    except OpslineError as error:  # expected: the message is written for the user
        print(f"[job] failed: {error}", flush=True)
        store.finish(job_id, "failed", error=str(error), message="failed")
        return 1
    except BaseException as error:  # noqa: BLE001 - the job row must say it failed
        traceback.print_exc()
        summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
        store.finish(
            job_id,
            "failed",
            message="failed",
            error=f"{type(error).__name__}: {summary} (the job log has the traceback)",
        )
        return 1
    store.finish(
        job_id,
        "succeeded",
        only_if=("running",),
        progress=1.0,
        message=outcome["message"],
        metrics=outcome["metrics"],
        model_name=outcome["model_name"],
        model_version=outcome["model_version"],
    )
    print(f"[job] succeeded: {outcome['message']}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m opsline.jobs.worker JOB_ID", file=sys.stderr)
        return 2
    return run_job(JobStore(home()), args[0])


if __name__ == "__main__":
    sys.exit(main())
