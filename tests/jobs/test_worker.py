"""The worker process on its own: ``python -m opsline.jobs.worker JOB_ID`` (no server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opsline.jobs.manager import worker_env
from opsline.jobs.store import JobStore


def run_worker(home: Path, job_id: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opsline.jobs.worker", job_id],
        cwd=cwd,
        env=worker_env(home),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_failed_job_records_the_readable_error_in_the_workspace(
    isolated_home: Path, tmp_path: Path
) -> None:
    store = JobStore(isolated_home)
    job = store.create("evaluate", "house_price")  # nothing registered yet
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_worker(isolated_home, job.id, cwd=elsewhere)
    assert done.returncode == 1
    got = store.get(job.id)
    assert got.status == "failed" and got.started_at and got.finished_at
    assert "No model 'house_price' has the alias 'production'" in got.error
    assert "Traceback" not in got.error
    log = Path(got.log_path).read_text()
    assert "[job] evaluate house_price" in log and "[job] failed" in log
    # Everything went to the job's workspace, nothing to the worker's working directory.
    assert list(elsewhere.iterdir()) == []


def test_job_cancelled_before_its_worker_starts_never_runs(
    isolated_home: Path, tmp_path: Path
) -> None:
    store = JobStore(isolated_home)
    job = store.create("train", "house_price", ["model=gbm"])
    store.finish(job.id, "cancelled", error="Cancelled by request.")
    done = run_worker(isolated_home, job.id, cwd=tmp_path)
    assert done.returncode == 0
    got = store.get(job.id)
    assert got.status == "cancelled" and got.started_at is None
    assert not (isolated_home / "data").exists()  # it did not even prepare the data


def test_unknown_job_id_exits_2(isolated_home: Path, tmp_path: Path) -> None:
    JobStore(isolated_home)
    done = run_worker(isolated_home, "no-such-job", cwd=tmp_path)
    assert done.returncode == 2 and "No job 'no-such-job'" in done.stderr


def test_progress_is_planned_in_the_unit_the_recipe_reports() -> None:
    from opsline.config import load_config
    from opsline.jobs.worker import _planned_steps

    # text generation reports per optimizer step with a step budget; the MLP per epoch
    assert _planned_steps(load_config("text_generation", [])) == 100
    assert _planned_steps(load_config("text_generation", ["trainer.max_steps=7"])) == 7
    assert _planned_steps(load_config("house_price", ["model=mlp", "trainer.max_epochs=3"])) == 3
