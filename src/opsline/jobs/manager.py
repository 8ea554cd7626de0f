"""Start, watch and cancel job worker processes; reconcile the table after a restart.

Each job runs as ``python -m opsline.jobs.worker JOB_ID`` in its own session (so its own
process group): a cancel signals the whole group (DataLoader workers included), and a server
crash does not take the worker down with it. The table in ``jobs.db`` is the truth; the
manager only adds what a process table can tell:

* a thread per started worker waits for it (no zombies) and marks the job failed if the
  worker died without recording an outcome (killed by the OOM killer, say);
* :meth:`JobManager.reconcile` (server start) marks ``queued``/``running`` jobs whose worker
  is gone as failed — they would otherwise claim to run forever and hold a job slot.

One server per workspace is assumed: a second server starting on the same workspace would
see the first one's just-queued jobs (no pid yet) as orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opsline.jobs.store import Job, JobStore
from opsline.processes import process_alive
from opsline.workspace import home

log = logging.getLogger("opsline.jobs")

RESTART_REASON = "server restarted while the job was running"
VANISHED_REASON = "the worker process exited without recording a result; see the job log"
CANCEL_GRACE_SECONDS = 5.0
TAIL_BYTES = 64 * 1024


class JobNotFound(KeyError):
    """No job with this id."""


class JobAlreadyFinished(Exception):
    """The job cannot be cancelled: it already ended (``job`` says how)."""

    def __init__(self, job: Job):
        super().__init__(f"Job {job.id} already finished with status {job.status!r}.")
        self.job = job


def worker_alive(pid: int | None, job_id: str | None = None) -> bool:
    """Whether ``pid`` is a live worker process (of ``job_id``, if given)."""
    return process_alive(pid, job_id)


def log_tail(path: str | Path, lines: int = 50) -> list[str]:
    """The last ``lines`` lines of a log (progress-bar redraws reduced to their last state)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - TAIL_BYTES))
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    rows = text.split("\n")  # not splitlines(): a bare \r is a redraw, not a new line
    if rows and rows[-1] == "":
        rows.pop()
    if size > TAIL_BYTES and rows:
        rows = rows[1:]  # the first row was cut in the middle
    return [row.rstrip("\r").rsplit("\r", 1)[-1] for row in rows[-lines:]]


def worker_env(root: Path) -> dict[str, str]:
    """The worker's environment: ours, pinned to this workspace, without the API key."""
    env = dict(os.environ)
    env["OPSLINE_HOME"] = str(Path(root).resolve())
    if env.get("OPSLINE_CONFIG_DIR"):  # a relative path would depend on the worker's cwd
        env["OPSLINE_CONFIG_DIR"] = str(Path(env["OPSLINE_CONFIG_DIR"]).resolve())
    # The worker needs no key, and override values can interpolate the environment.
    env.pop("OPSLINE_API_KEY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class JobManager:
    """Jobs of one workspace, with at most ``max_jobs`` queued or running at a time."""

    def __init__(
        self,
        root: Path | None = None,
        max_jobs: int = 1,
        cancel_grace: float = CANCEL_GRACE_SECONDS,
    ):
        self.root = Path(root or home()).resolve()
        self.store = JobStore(self.root)
        self.max_jobs = max_jobs
        self.cancel_grace = cancel_grace
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    def start(
        self, kind: str, recipe: str, overrides: Sequence[str] = (), model: str | None = None
    ) -> Job:
        """Queue a job and launch its worker; returns at once (the job is ``queued``).

        Raises:
            JobLimitError: ``max_jobs`` jobs are already queued or running.
        """
        self.refresh()
        job = self.store.create(kind, recipe, overrides, model, max_active=self.max_jobs)
        try:
            with open(job.log_path, "ab") as log_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "opsline.jobs.worker", job.id],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=worker_env(self.root),
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as error:
            self.store.finish(job.id, "failed", error=f"Could not start the worker: {error}")
            raise
        with self._lock:
            self._children[job.id] = process
        self.store.update(job.id, pid=process.pid)
        threading.Thread(
            target=self._reap, args=(job.id, process), daemon=True, name=f"opsline-job-{job.id[:8]}"
        ).start()
        log.info(
            "Started %s job %s (%s %s), pid %s",
            kind,
            job.id,
            recipe,
            " ".join(overrides),
            process.pid,
        )
        return self.store.get(job.id) or job

    def _reap(self, job_id: str, process: subprocess.Popen) -> None:
        code = process.wait()
        with self._lock:
            self._children.pop(job_id, None)
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if self.store.finish(
            job_id,
            "failed",
            message="failed",
            error=f"The worker process ended ({how}) without recording a result; see the job log.",
        ):
            log.warning("Job %s: worker ended (%s) without a result", job_id, how)

    def cancel(self, job_id: str) -> Job:
        """Mark the job cancelled and stop its worker (SIGTERM, SIGKILL after the grace).

        Raises:
            JobNotFound: no such job.
            JobAlreadyFinished: it already succeeded, failed or was cancelled.
        """
        job = self.get(job_id)
        if not self.store.finish(
            job_id, "cancelled", message="cancelled", error="Cancelled by request."
        ):
            raise JobAlreadyFinished(self.get(job_id))
        job = self.get(job_id)
        # A job cancelled while still queued without a pid never runs: its worker sees the
        # status when it starts and exits at once.
        if job.pid and worker_alive(job.pid, job.id):
            self._signal(job.pid, signal.SIGTERM)
            threading.Thread(
                target=self._escalate,
                args=(job.id, job.pid),
                daemon=True,
                name=f"opsline-cancel-{job.id[:8]}",
            ).start()
        return job

    def _escalate(self, job_id: str, pid: int) -> None:
        deadline = time.monotonic() + self.cancel_grace
        with self._lock:
            process = self._children.get(job_id)
        while time.monotonic() < deadline:
            if (process.poll() is not None) if process else not worker_alive(pid, job_id):
                break
            time.sleep(0.1)
        else:
            log.warning(
                "Job %s ignored SIGTERM for %.0f s; sending SIGKILL", job_id, self.cancel_grace
            )
        # Also reaches helpers the worker left behind (its group outlives it).
        self._signal(pid, signal.SIGKILL)

    @staticmethod
    def _signal(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    # -- reading -------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        self.refresh()
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(self, status: str | None = None, limit: int = 50) -> list[Job]:
        self.refresh()
        return self.store.search(status, limit)

    # -- consistency ---------------------------------------------------------------------
    def reconcile(self) -> list[str]:
        """At server start: active jobs whose worker is gone become ``failed``.

        Workers that survived the restart keep running and still record their result.
        Returns the ids of the jobs marked failed.
        """
        failed = []
        for job in self.store.active():
            with self._lock:
                owned = job.id in self._children
            if owned or worker_alive(job.pid, job.id):
                continue
            if self.store.finish(job.id, "failed", error=RESTART_REASON, message="failed"):
                failed.append(job.id)
        if failed:
            log.warning("Marked %d job(s) failed: %s", len(failed), RESTART_REASON)
        return failed

    def refresh(self) -> None:
        """Fail running jobs of other (earlier) servers whose worker has died since."""
        for job in self.store.active():
            with self._lock:
                owned = job.id in self._children
            if owned or not job.pid or worker_alive(job.pid, job.id):
                continue
            self.store.finish(job.id, "failed", error=VANISHED_REASON, message="failed")
