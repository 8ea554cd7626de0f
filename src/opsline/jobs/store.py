"""The job table: one SQLite file (``<home>/jobs.db``) shared by the server and its workers.

Every call opens its own short connection, so the store is safe from several threads and
processes at once; WAL mode lets readers (``GET /jobs``) proceed while a worker writes.
Status changes are conditional updates (``... WHERE status IN (...)``): whoever moves a job
first wins, so a worker finishing can never overwrite a cancellation, nor the reverse.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KINDS = ("train", "evaluate", "retrain")  # retrain: the loop's prepare+train+gate
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
HISTORY_LIMIT = 2000  # per-epoch metric rows kept per job (a runaway loop must not bloat it)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    recipe TEXT NOT NULL,
    overrides TEXT NOT NULL DEFAULT '[]',
    model TEXT,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    history TEXT NOT NULL DEFAULT '[]',
    model_name TEXT,
    model_version TEXT,
    error TEXT,
    log_path TEXT NOT NULL,
    pid INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
"""
_JSON_COLUMNS = ("overrides", "metrics", "history")


def now() -> str:
    """UTC timestamp, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class Job:
    """One row of the job table."""

    id: str
    kind: str
    recipe: str
    status: str
    log_path: str
    created_at: str
    overrides: list[str] = field(default_factory=list)
    model: str | None = None
    progress: float = 0.0
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    model_name: str | None = None
    model_version: str | None = None
    error: str | None = None
    pid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobLimitError(Exception):
    """Starting one more job would exceed the concurrency limit."""

    def __init__(self, limit: int, active: int):
        super().__init__(
            f"{active} job(s) already queued or running; the limit is {limit} "
            "(OPSLINE_MAX_JOBS). Retry when one finishes."
        )
        self.limit = limit
        self.active = active


class JobStore:
    """Jobs in ``<root>/jobs.db``; logs under ``<root>/jobs/``."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.path = self.root / "jobs.db"
        self.log_dir = self.root / "jobs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        db = self._open()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
            db.executescript(_SCHEMA)
        finally:
            db.close()

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves. The busy timeout makes concurrent
        # writers wait for each other instead of failing with "database is locked";
        # synchronous=NORMAL is crash-safe in WAL mode and spares an fsync per update.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = self._open()
        try:
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        for key in _JSON_COLUMNS:
            data[key] = json.loads(data[key])
        return Job(**data)

    # -- create and read -----------------------------------------------------------------
    def create(
        self,
        kind: str,
        recipe: str,
        overrides: Iterable[str] = (),
        model: str | None = None,
        max_active: int | None = None,
    ) -> Job:
        """Insert a ``queued`` job; ``JobLimitError`` if ``max_active`` jobs are active.

        The count and the insert share one write transaction, so two concurrent requests
        cannot both take the last slot.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        job_id = str(uuid.uuid4())
        job = Job(
            id=job_id,
            kind=kind,
            recipe=recipe,
            status="queued",
            log_path=str(self.log_dir / f"{job_id}.log"),
            created_at=now(),
            overrides=list(overrides),
            model=model,
            message="queued",
        )
        with self._connect(immediate=True) as db:
            if max_active is not None:
                (active,) = db.execute(
                    f"SELECT COUNT(*) FROM jobs WHERE status IN {ACTIVE}"
                ).fetchone()
                if active >= max_active:
                    raise JobLimitError(max_active, active)
            row = job.to_dict()
            for key in _JSON_COLUMNS:
                row[key] = json.dumps(row[key])
            columns = ", ".join(row)
            db.execute(
                f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        return job

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def search(self, status: str | None = None, limit: int = 50) -> list[Job]:
        """Newest first, optionally only one status."""
        query, args = "SELECT * FROM jobs", []
        if status:
            query += " WHERE status = ?"
            args.append(status)
        query += " ORDER BY created_at DESC LIMIT ?"
        args.append(int(limit))
        with self._connect() as db:
            return [self._job(r) for r in db.execute(query, args).fetchall()]

    def active(self) -> list[Job]:
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM jobs WHERE status IN {ACTIVE}").fetchall()
        return [self._job(r) for r in rows]

    # -- updates -------------------------------------------------------------------------
    def update(self, job_id: str, only_if: Iterable[str] | None = None, **values: Any) -> bool:
        """Set columns of one job; with ``only_if``, only while its status is one of those.

        Returns whether the row changed (``False``: someone else finished the job first).
        """
        for key in _JSON_COLUMNS:
            if key in values:
                values[key] = json.dumps(values[key])
        sets = ", ".join(f"{key} = ?" for key in values)
        query, args = f"UPDATE jobs SET {sets} WHERE id = ?", [*values.values(), job_id]
        if only_if is not None:
            states = tuple(only_if)
            query += f" AND status IN ({', '.join('?' * len(states))})"
            args += states
        with self._connect(immediate=True) as db:
            return db.execute(query, args).rowcount == 1

    def add_history(
        self, job_id: str, entries: list[dict[str, float]], progress: float | None, message: str
    ) -> None:
        """Append per-epoch metrics to a running job's history (capped) and move its progress."""
        with self._connect(immediate=True) as db:
            row = db.execute("SELECT history, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] != "running":
                return
            history = (json.loads(row["history"]) + list(entries))[-HISTORY_LIMIT:]
            sets, args = "history = ?, message = ?", [json.dumps(history), message]
            if progress is not None:
                sets += ", progress = ?"
                args.append(progress)
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*args, job_id])

    def finish(
        self,
        job_id: str,
        status: str,
        error: str | None = None,
        only_if: Iterable[str] = ACTIVE,
        **values: Any,
    ) -> bool:
        """Move an active job to a final ``status`` (no-op if it already finished)."""
        if status not in FINISHED:
            raise ValueError(f"{status!r} is not a final status")
        return self.update(
            job_id, only_if=only_if, status=status, error=error, finished_at=now(), **values
        )
