"""``kill -9`` of a job worker in the middle of training.

A real train job started through :class:`JobManager` (its worker a real ``python -m
opsline.jobs.worker`` process training a real MLP); once it reports an epoch the worker gets
SIGKILL — no handler runs, nothing is closed. Afterwards the job table says the job failed
and how (not ``running`` for ever, not holding the only job slot), the MLflow registry has
no version from it, and the next job runs to a registered version.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsline.jobs.manager import JobManager, worker_alive
from opsline.jobs.store import Job, JobStore
from opsline.tracking.registry import list_versions

# An MLP that would train for a long time: it is killed long before the end.
LONG_MLP = ["model=mlp", "model.patience=1000", "trainer.max_epochs=1000"]


def wait_until(get: Callable[[], Job], done: Callable[[Job], bool], timeout: float = 300) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = get()
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last state: {job}")
        time.sleep(0.2)


@pytest.fixture
def manager(prepared_home: Path) -> Iterator[JobManager]:
    """One job slot over a workspace with the prepared data; no worker outlives the test."""
    jobs = JobManager(prepared_home, max_jobs=1)
    yield jobs
    for job in JobStore(prepared_home).search(None, 50):
        if job.pid and worker_alive(job.pid, job.id):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)


def test_kill_9_mid_training_fails_the_job_and_frees_the_slot(
    manager: JobManager, prepared_home: Path
) -> None:
    job = manager.start("train", "house_price", LONG_MLP)
    training = wait_until(
        lambda: manager.get(job.id),
        lambda j: j.status != "queued" and (j.message.startswith("training: step") or j.finished),
    )
    assert training.status == "running", training  # mid-training, an epoch reported
    assert training.pid and worker_alive(training.pid, job.id)

    os.kill(training.pid, signal.SIGKILL)  # the worker only: its group is its own

    failed = wait_until(lambda: manager.get(job.id), lambda j: j.finished, timeout=60)
    assert failed.status == "failed"
    assert "killed by SIGKILL" in failed.error and "without recording a result" in failed.error
    assert failed.finished_at is not None
    # A server started afterwards (a fresh manager over the same table) sees the same.
    assert JobManager(prepared_home).get(job.id).status == "failed"
    assert JobStore(prepared_home).active() == []
    # No version was registered: the worker died before `registering`.
    assert list_versions("house_price") == []

    # The slot is free: the next job runs to the end and registers version 1.
    gbm = manager.start("train", "house_price", ["model=gbm"])
    done = wait_until(lambda: manager.get(gbm.id), lambda j: j.finished, timeout=600)
    assert done.status == "succeeded", done.error
    assert done.model_version == "1"
    assert [v["version"] for v in list_versions("house_price")] == ["1"]
    assert manager.get(job.id).status == "failed"  # the killed job's record is unchanged
