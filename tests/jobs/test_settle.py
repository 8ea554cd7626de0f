"""A retrain worker killed between the promotion and closing its record.

The kill window is created directly, as a SIGKILL at that instant would leave it: the
registry's ``production`` alias moved to the job's version, the loop's action record still
``running`` with the candidate noted, the job's worker pid dead. Whoever follows the job
(here ``opsline monitor watch``'s loop, as the server's does) must record the truth read
from the registry, not a failure. A real workspace (a copy of the session's trained one),
real MLflow registry, real ``jobs.db``, a real dead process.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from opsline.jobs.actions import FAILED, PROMOTED, RUNNING, ActionLog
from opsline.jobs.manager import VANISHED_REASON, JobManager
from opsline.jobs.store import JobStore
from opsline.monitoring.watch import Watch
from opsline.tracking.registry import current_version, list_versions, promote, register

MODEL = "house_price"
PRODUCTION = f"models:/{MODEL}@production"


@pytest.fixture
def workspace(_trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the trained workspace (this test moves its alias) with a second
    version registered from the first one's run: the retrain's candidate."""
    home = tmp_path / "home"
    shutil.copytree(_trained_home, home, ignore=shutil.ignore_patterns("predictions.db*"))
    monkeypatch.setenv("OPSLINE_HOME", str(home))
    monkeypatch.setenv("OPSLINE_PREDICTION_LOG_URI", f"sqlite:///{tmp_path / 'predictions.db'}")
    first = list_versions(MODEL)[0]
    assert first["version"] == "1" and first["aliases"] == ["production"]
    candidate = register(
        MODEL, first["run_id"], f"runs:/{first['run_id']}/model", {"kind": "gbm"}, first["metrics"]
    )
    assert candidate == "2"
    return home


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def retrain_left_running(home: Path, *, alias_moved: bool) -> tuple[str, str]:
    """The state a worker killed after the gate (or, ``alias_moved=False``, before it)
    leaves: returns (job id, action id)."""
    store = JobStore(home)
    job = store.create("retrain", "house_price")
    store.update(job.id, status="running", pid=dead_pid(), message="promoting")
    actions = ActionLog(home)
    action = actions.add(
        "house_price",
        MODEL,
        "drift",
        "retrain",
        RUNNING,
        {"streak": 3},
        job_id=job.id,
        reason="drift on 3 checks",
        old_version="1",
    )
    actions.note_candidate(action.id, "2")
    if alias_moved:
        decision = promote(MODEL, "2", "rmsle", greater_is_better=False, force=True)
        assert decision.promoted
    return job.id, action.id


def watch_loop(home: Path) -> Watch:
    """``opsline monitor watch``'s loop over ``home``, as started after a restart."""
    from opsline.monitoring.policy import load_policy
    from opsline.recipes.registry import get_recipe

    policy = load_policy("default", "house_price")
    assert policy is not None
    return Watch(
        get_recipe("house_price"), policy, JobManager(home), model_name=MODEL, tracking_uri=None
    )


def test_dead_worker_after_the_promotion_is_recorded_as_promoted(workspace: Path) -> None:
    job_id, action_id = retrain_left_running(workspace, alias_moved=True)
    loop = watch_loop(workspace)  # a restarted loop: the record says a retrain still runs
    assert loop.state.running_job == job_id

    action = loop.wait(job_id)

    job = JobStore(workspace).get(job_id)
    assert job is not None and job.status == "failed" and job.error == VANISHED_REASON
    assert action is not None and action.id == action_id
    assert action.outcome == PROMOTED, action
    assert (action.old_version, action.new_version) == ("1", "2")
    assert "promoted version 2" in action.result and VANISHED_REASON in action.result
    assert action.finished_at is not None
    # The record agrees with what serves, and the loop does not count a failed retrain.
    assert current_version(PRODUCTION) == "2"
    assert loop.state.failures == 0 and loop.state.running_job is None
    assert ActionLog(workspace).for_job(job_id) == action  # settled once, stored


def test_dead_worker_before_the_promotion_is_recorded_as_failed(workspace: Path) -> None:
    job_id, _ = retrain_left_running(workspace, alias_moved=False)
    loop = watch_loop(workspace)

    action = loop.wait(job_id)

    assert action is not None and action.outcome == FAILED
    assert action.result == f"{VANISHED_REASON} (version 2 was registered, not promoted)"
    assert current_version(PRODUCTION) == "1"  # nothing moved, and nothing claims it did
    assert loop.state.failures == 1


def test_a_closed_record_is_left_as_the_worker_wrote_it(workspace: Path) -> None:
    job_id, action_id = retrain_left_running(workspace, alias_moved=True)
    ActionLog(workspace).finish(action_id, "not_promoted", "the gate said no")
    action = watch_loop(workspace).wait(job_id)
    assert action is not None
    assert (action.outcome, action.result) == ("not_promoted", "the gate said no")
