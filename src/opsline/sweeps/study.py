"""The Optuna study behind ``opsline sweep``: storage, resume, workers, ``--register-best``.

* Storage: ``sqlite:///<OPSLINE_HOME>/sweeps.db`` by default, or any SQLAlchemy URL such as
  ``postgresql://user@host/db`` so workers on several machines share one study.
* Resume: the study is loaded by name (``<recipe>-sweep`` by default) and runs until it holds
  ``--trials`` COMPLETE or PRUNED trials; finished trials are never re-run. A trial left
  RUNNING by a dead process is marked FAIL first: on this machine when its worker's pid is
  gone, elsewhere (RDB servers only) when its heartbeat is stale.
* Parent run: one MLflow run per study; its id is a study user attribute, so a resumed
  sweep keeps adding child runs under the same parent.
* ``--parallel K``: K worker processes sharing the storage (each with its own seeded
  sampler). A crashed trial is FAIL and the worker goes on; ``OpslineError`` (a user error
  such as a missing dataset) stops the sweep since every trial would hit it.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsline.errors import OpslineError, UsageError
from opsline.processes import process_alive
from opsline.sweeps.objective import WORKER_ATTR, Objective
from opsline.sweeps.space import SweepSpec
from opsline.workspace import home

Say = Callable[[str], None]
HEARTBEAT_SECONDS = 60  # RDB servers only: a trial silent for 3 beats is stale


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class SweepResult:
    """What a finished ``run_sweep`` reports (also printed by the CLI)."""

    study_name: str
    storage: str
    parent_run_id: str
    metric: str
    direction: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    table: str = ""
    importances: dict[str, float] | None = None
    importance_note: str | None = None
    registered_version: str | None = None


def storage_url(storage: str | None = None) -> str:
    """``storage`` or the workspace database ``sqlite:///<OPSLINE_HOME>/sweeps.db``."""
    return storage or f"sqlite:///{home() / 'sweeps.db'}"


def redact(url: str) -> str:
    """The URL without its password, for logs and tags."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str) -> Any:
    """An ``optuna.storages.RDBStorage``; connection problems become one-sentence errors."""
    import optuna

    sqlite = url.startswith("sqlite")
    try:
        return optuna.storages.RDBStorage(
            url,
            # Several worker processes write one SQLite file: wait for the lock, don't fail.
            engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None,
            heartbeat_interval=None if sqlite else HEARTBEAT_SECONDS,
            grace_period=None if sqlite else 3 * HEARTBEAT_SECONDS,
        )
    except ModuleNotFoundError as error:
        raise UsageError(
            f"Sweep storage {redact(url)} needs the {error.name!r} driver: "
            f"pip install it (e.g. psycopg2-binary for PostgreSQL)."
        ) from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises many kinds
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"Cannot open sweep storage {redact(url)}: {first}") from None


def _sampler(spec: SweepSpec, seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.n_startup_trials)


def _pruner(spec: SweepSpec) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.pruner.get("n_startup_trials", 2),
        n_warmup_steps=spec.pruner.get("n_warmup_steps", 3),
    )


def fail_dead_trials(
    study: Any, experiment: str, tracking_uri: str | None, say: Say = _stderr
) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker died; end their MLflow runs as KILLED."""
    import socket

    import optuna
    from optuna.trial import TrialState

    from opsline.tracking.runs import end_runs

    with warnings.catch_warnings():  # "experimental" since 2.9; a no-op without heartbeat
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
        worker_host, _, pid = worker.rpartition(":")
        age = (
            (datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
        )
        dead = (worker_host == host and pid.isdigit() and not process_alive(int(pid))) or (
            not worker and age > 60
        )
        if not dead:
            continue
        # The storage API is the only way to end another process's trial (optuna's own
        # fail_stale_trials does the same); the state is only changed while still RUNNING.
        storage = study._storage
        try:
            storage.set_trial_user_attr(
                trial._trial_id, "error", f"worker {worker or '?'} died mid-trial"
            )
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        end_runs(
            experiment,
            {"optuna.study": study.study_name, "optuna.trial_number": str(trial.number)},
            uri=tracking_uri,
        )
        failed.append(trial.number)
    if failed:
        say(
            f"Marked {len(failed)} trial(s) left running by a dead worker as failed: "
            f"{', '.join(map(str, failed))}."
        )
    return failed


def _counts(study: Any) -> tuple[int, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return done, running


def work(
    recipe: str,
    overrides: Sequence[str],
    spec: SweepSpec,
    url: str,
    study_name: str,
    parent_run_id: str,
    target: int,
    max_failures: int,
    seed: int,
    say: Say = _stderr,
) -> int:
    """One worker: run trials until the study holds ``target`` finished ones.

    Returns the number of failed trials. Raises ``OpslineError`` after ``max_failures``
    failures in a row, or at once for a user error (which every trial would repeat).
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # we say one line per trial
    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(url),
        sampler=_sampler(spec, seed),
        pruner=_pruner(spec),
    )
    objective = Objective(recipe, overrides, spec, parent_run_id, study_name, say)
    failures = in_a_row = 0
    while True:
        done, running = _counts(study)
        if done + running >= target:
            return failures
        if in_a_row >= max_failures:
            raise OpslineError(
                f"Stopped the sweep after {in_a_row} failed trials in a row; "
                f"see the logs in {home() / 'logs'}."
            )
        try:
            study.optimize(objective, n_trials=1, catch=())
        except OpslineError:
            raise
        except Exception as error:  # noqa: BLE001 - a crashed trial must not stop the sweep
            failures += 1
            in_a_row += 1
            log = _log_crash(study_name, objective.last_number)
            say(
                f"Trial {objective.last_number} failed ({type(error).__name__}: "
                f"{_first_line(error)}); continuing. Details in {log}."
            )
            continue
        trial = next(
            t for t in study.get_trials(deepcopy=False) if t.number == objective.last_number
        )
        in_a_row = 0 if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else in_a_row
        if trial.state == TrialState.PRUNED:  # Optuna's value is then the last pruning report
            value = (
                ""
                if trial.value is None
                else f" at step {trial.last_step} ({spec.prune_on}={trial.value:.5g})"
            )
        else:
            value = "" if trial.value is None else f" {spec.metric}={trial.value:.5g}"
        say(f"Trial {trial.number} {trial.state.name.lower()}{value}.")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


def _log_crash(study_name: str, number: int | None) -> Path:
    log = home() / "logs" / f"sweep-{study_name}-trial-{number}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(traceback.format_exc())
    return log


def _worker_main(kwargs: dict[str, Any], threads: int) -> None:
    """Entry point of a ``--parallel`` worker process (spawned, so nothing is inherited)."""
    # Before torch is imported: K workers on C cores get C/K threads each, not C each.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        work(**kwargs)
    except OpslineError as error:
        _stderr(f"Error: {error}")
        sys.exit(error.exit_code)


def run_workers(parallel: int, **kwargs: Any) -> None:
    """Run ``work`` in this process (K=1) or in K processes sharing the storage."""
    if parallel <= 1:
        work(**kwargs)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # torch/Lightning are not fork-safe
    threads = max(1, (os.cpu_count() or 1) // parallel)
    processes = []
    for index in range(parallel):
        job = dict(kwargs, seed=kwargs["seed"] + 1000 * index)
        job.pop("say", None)
        process = context.Process(
            target=_worker_main, args=(job, threads), name=f"opsline-sweep-{index}"
        )
        process.start()
        processes.append(process)
    for process in processes:
        process.join()
    bad = [p.exitcode for p in processes if p.exitcode]
    if bad:
        raise OpslineError(
            f"{len(bad)} of {parallel} sweep workers stopped with an error "
            f"(see the messages above)."
        )
