"""Sweeps end to end on a tiny config: child runs, resume after SIGKILL, crashes, best version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["trainer=debug"]  # 2 epochs per trial
SPACE = {
    "model.lr": {"type": "float", "low": 3.0e-4, "high": 3.0e-3, "log": True},
    "model.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "model.hidden": {"type": "categorical", "choices": [[32], [64, 32]]},
}


def _study(home: Path, name: str = "house_price-sweep"):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{home / 'sweeps.db'}")


def _states(home: Path) -> list[str]:
    """Trial states read-only: optuna.load_study would race the sweep creating its tables."""
    import sqlite3

    path = home / "sweeps.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return [row[0] for row in db.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.OperationalError:  # tables not created yet, or locked
        return []


def _trial_run_status(home: Path, number: int) -> str | None:
    """Status of trial ``number``'s MLflow run, read-only (None before it exists)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{home / 'mlflow.db'}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute(
                "SELECT r.status FROM runs r JOIN tags t ON r.run_uuid = t.run_uuid"
                " WHERE t.key = 'optuna.trial_number' AND t.value = ?",
                (str(number),),
            ).fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _runs(**tags: str):
    from opsline.tracking.runs import client

    mlflow = client()
    experiment = mlflow.get_experiment_by_name("house_price")
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return mlflow.search_runs([experiment.experiment_id], filter_string=query)


def test_sweep_nests_trials_and_registers_the_best(prepared_home: Path, sweep_space) -> None:
    from opsline.sweeps.runner import run_sweep
    from opsline.tracking.runs import client

    sweep_space(SPACE)
    result = run_sweep("house_price", 3, TINY, register_best=True)

    states = [row["state"] for row in result.rows]
    assert len(states) == 3 and set(states) <= {"COMPLETE", "PRUNED"}
    parents = _runs(**{"sweep.role": "parent"})
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    children = _runs(**{"mlflow.parentRunId": result.parent_run_id})
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == [0, 1, 2]
    parent = client().get_run(result.parent_run_id)
    assert parent.data.tags["sweep.best_trial"] == str(result.best["trial"])
    files = {a.path for a in client().list_artifacts(result.parent_run_id, "sweep")}
    assert {"sweep/summary.txt", "sweep/trials.json"} <= files
    assert "sweep/importance.png" in files or "sweep/importance.txt" in files

    # Trials registered nothing; --register-best made exactly one version: the best trial's.
    versions = client().search_model_versions("name = 'house_price'")
    assert [str(v.version) for v in versions] == [result.registered_version]
    run = client().get_run(versions[0].run_id)
    assert run.info.run_id == result.best["run_id"]
    for key, value in result.best["params"].items():
        assert run.data.params[key] == str(value), key
    assert float(versions[0].tags["metric.val_rmsle"]) == pytest.approx(result.best["value"])


def test_crashed_trial_is_failed_and_the_sweep_goes_on(prepared_home: Path, sweep_space) -> None:
    import optuna

    from opsline.sweeps.runner import run_sweep

    # A batch size of 0 passes the config schema (an integer) but crashes in training.
    sweep_space({**SPACE, "model.batch_size": {"type": "categorical", "choices": [64, 0]}})
    # Make the first trial the crashing one, deterministically.
    study = optuna.create_study(
        study_name="house_price-sweep",
        direction="minimize",
        storage=f"sqlite:///{prepared_home / 'sweeps.db'}",
    )
    study.enqueue_trial({"model.batch_size": 0, "model.hidden": "[32]"})
    result = run_sweep("house_price", 1, TINY)

    assert [row["state"] for row in result.rows] == ["FAIL", "COMPLETE"]
    assert "batch_size should be a positive integer" in result.rows[0]["error"]
    assert result.best["trial"] == 1
    assert (prepared_home / "logs" / "sweep-house_price-sweep-trial-0.log").is_file()


def test_resume_after_kill_runs_only_the_missing_trials(prepared_home: Path, sweep_space) -> None:
    from optuna.trial import TrialState

    sweep_space(SPACE)
    command = [sys.executable, "-m", "opsline", "sweep", "house_price", "--trials", "3", *TINY]
    env = {**os.environ, "OPSLINE_HOME": str(prepared_home)}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while True:  # wait until trial 0 is done and trial 1 is under way
            assert first.poll() is None and time.monotonic() < deadline, "no trial 1 started"
            if (
                _states(prepared_home)[:2] == ["COMPLETE", "RUNNING"]
                and _trial_run_status(prepared_home, 1) == "RUNNING"
            ):
                break
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = _study(prepared_home).trials[0]

    second = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert second.returncode == 0, second.stderr
    assert "Marked 1 trial(s) left running by a dead worker as failed: 1." in second.stderr

    trials = _study(prepared_home).trials
    assert trials[0].params == before.params and trials[0].value == before.value
    assert trials[1].state == TrialState.FAIL
    assert "died mid-trial" in trials[1].user_attrs["error"]
    assert [t.number for t in trials] == [0, 1, 2, 3]  # trial 0 was not run again
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 3
    # One parent for both invocations; the killed trial's run is KILLED, not left RUNNING.
    parents = _runs(**{"sweep.role": "parent"})
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    killed = _runs(**{"optuna.trial_number": "1"})
    assert [r.info.status for r in killed] == ["KILLED"]
    assert json.loads(
        second.stdout.split("best: trial ")[1].split(" ", 2)[2].rsplit(" (run", 1)[0]
    )  # the best trial's params are printed
