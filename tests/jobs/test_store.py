"""The job table and the manager's process bookkeeping, without running any training (fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsline.jobs.manager import RESTART_REASON, JobManager, log_tail, worker_alive
from opsline.jobs.store import HISTORY_LIMIT, JobLimitError, JobStore


@pytest.fixture
def store(isolated_home: Path) -> JobStore:
    return JobStore(isolated_home)


def test_create_get_and_search_newest_first(store: JobStore, isolated_home: Path) -> None:
    first = store.create("train", "house_price", ["model=gbm"])
    second = store.create("evaluate", "house_price", model="models:/house_price/1")
    assert (isolated_home / "jobs.db").exists()
    got = store.get(first.id)
    assert got.status == "queued" and got.overrides == ["model=gbm"] and got.metrics == {}
    assert got.log_path == str(isolated_home / "jobs" / f"{first.id}.log")
    assert [j.id for j in store.search()] == [second.id, first.id]
    assert [j.id for j in store.search(status="queued", limit=1)] == [second.id]
    assert store.search(status="failed") == []
    assert store.get("nope") is None


def test_wal_mode(store: JobStore) -> None:
    import sqlite3

    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_limit_counts_queued_and_running_only(store: JobStore) -> None:
    job = store.create("train", "house_price", max_active=1)
    with pytest.raises(JobLimitError, match="limit is 1"):
        store.create("train", "house_price", max_active=1)
    assert store.finish(job.id, "succeeded")
    store.create("train", "house_price", max_active=1)  # the slot is free again


_TAKE_SLOT = """
import sys
from pathlib import Path
from opsline.jobs.store import JobLimitError, JobStore
try:
    JobStore(Path(sys.argv[1])).create("train", "house_price", max_active=1)
except JobLimitError:
    sys.exit(3)
"""


def test_limit_holds_across_processes(store: JobStore) -> None:
    # Four processes race for one slot: exactly one may win.
    racers = [
        subprocess.Popen([sys.executable, "-c", _TAKE_SLOT, str(store.root)]) for _ in range(4)
    ]
    codes = sorted(p.wait(timeout=60) for p in racers)
    assert codes == [0, 3, 3, 3]
    assert len(store.active()) == 1


def test_final_status_is_never_overwritten(store: JobStore) -> None:
    job = store.create("train", "house_price")
    assert store.update(job.id, only_if=("queued",), status="running")
    assert store.finish(job.id, "cancelled", error="Cancelled by request.")
    # The worker finishing afterwards must not turn the cancellation into a success.
    assert not store.finish(job.id, "succeeded", only_if=("running",), metrics={"x": 1.0})
    got = store.get(job.id)
    assert got.status == "cancelled" and got.metrics == {} and got.finished_at


def test_history_is_capped_and_only_while_running(store: JobStore) -> None:
    job = store.create("train", "house_price")
    store.add_history(job.id, [{"step": 0}], 0.2, "ignored: not running yet")
    assert store.get(job.id).history == []
    store.update(job.id, status="running")
    store.add_history(
        job.id,
        [{"step": i, "loss": 1.0} for i in range(HISTORY_LIMIT + 5)],
        0.5,
        "training: step x",
    )
    got = store.get(job.id)
    assert len(got.history) == HISTORY_LIMIT and got.history[-1]["step"] == HISTORY_LIMIT + 4
    assert got.progress == 0.5 and got.message == "training: step x"


def test_log_tail_keeps_last_lines_and_last_progress_redraw(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    assert log_tail(log) == []
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "10%\r50%\r100%\n")
    tail = log_tail(log, lines=3)
    assert tail == ["line 98", "line 99", "100%"]


def test_worker_alive_checks_the_job_id(store: JobStore) -> None:
    assert worker_alive(os.getpid())
    # A live pid that is not this job's worker (a reused pid after a crash) is not alive.
    assert not worker_alive(os.getpid(), "some-job-id")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=60)
    assert not worker_alive(ended.pid)
    assert not worker_alive(None)


def test_reconcile_fails_orphans_and_keeps_finished(store: JobStore, isolated_home: Path) -> None:
    finished = store.create("train", "house_price")
    store.finish(finished.id, "succeeded", model_version="1")
    orphan = store.create("train", "house_price")
    store.update(orphan.id, status="running", pid=os.getpid())  # alive, but not its worker
    never_started = store.create("evaluate", "house_price")
    failed = JobManager(isolated_home).reconcile()
    assert set(failed) == {orphan.id, never_started.id}
    for job_id in failed:
        job = store.get(job_id)
        assert job.status == "failed" and job.error == RESTART_REASON
    assert store.get(finished.id).status == "succeeded"
