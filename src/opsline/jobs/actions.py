"""The retrain loop's record: every automatic action, readable by a person, in ``jobs.db``.

One row per decision the loop acted on (or, with ``--dry-run``, would have): what
triggered it (drift on K consecutive checks, live error over its threshold), the evidence,
the train job it started, the promotion gate's outcome and the version change. The retrain
job's worker fills in the outcome itself, so the record is complete even when the server
that started the job is gone. ``GET /model`` (``monitoring.loop``), ``opsline monitor
watch`` and the version's MLflow tags (``retrain.*``) show the same facts.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opsline.jobs.store import now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS loop_actions (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    recipe TEXT NOT NULL,
    model TEXT NOT NULL,
    trigger TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    decision TEXT NOT NULL,
    job_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '',
    old_version TEXT,
    new_version TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS loop_actions_model_at ON loop_actions (model, at);
CREATE INDEX IF NOT EXISTS loop_actions_job ON loop_actions (job_id);
"""

#: ``outcome`` values: the job is running, or how it ended.
RUNNING, PROMOTED, NOT_PROMOTED, FAILED, DRY_RUN = (
    "running",
    "promoted",
    "not_promoted",
    "failed",
    "dry_run",
)


@dataclass
class Action:
    """One automatic action of the loop."""

    id: str
    at: str
    recipe: str
    model: str
    trigger: str  # drift | quality
    decision: str  # retrain | dry_run
    outcome: str
    evidence: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    reason: str = ""  # why the loop acted (the policy's sentence)
    result: str = ""  # how it ended: the gate's reason, or the failure
    old_version: str | None = None
    new_version: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ActionLog:
    """The ``loop_actions`` table in ``<root>/jobs.db`` (short connections, WAL)."""

    def __init__(self, root: Path):
        self.path = Path(root).resolve() / "jobs.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._open()) as db:
            db.executescript(_SCHEMA)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def add(
        self,
        recipe: str,
        model: str,
        trigger: str,
        decision: str,
        outcome: str,
        evidence: dict[str, Any],
        job_id: str | None = None,
        reason: str = "",
        old_version: str | None = None,
    ) -> Action:
        action = Action(
            id=str(uuid.uuid4()),
            at=now(),
            recipe=recipe,
            model=model,
            trigger=trigger,
            decision=decision,
            outcome=outcome,
            evidence=evidence,
            job_id=job_id,
            reason=reason,
            old_version=old_version,
        )
        row = action.to_dict()
        row["evidence"] = json.dumps(row["evidence"], default=str)
        with closing(self._open()) as db:
            db.execute(
                f"INSERT INTO loop_actions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        return action

    def finish(
        self,
        action_id: str,
        outcome: str,
        result: str,
        new_version: str | None = None,
        old_version: str | None = None,
    ) -> None:
        """Record how the action ended (only once: a finished action stays as it is).

        A ``new_version`` noted earlier (:meth:`note_candidate`) is kept when none is given.
        """
        with closing(self._open()) as db:
            db.execute(
                "UPDATE loop_actions SET outcome = ?, result = ?, "
                "new_version = COALESCE(?, new_version), "
                "old_version = COALESCE(?, old_version), finished_at = ? "
                "WHERE id = ? AND outcome = ?",
                (outcome, result, new_version, old_version, now(), action_id, RUNNING),
            )

    def note_candidate(self, action_id: str, version: str) -> None:
        """The version the job registered, written before the gate runs: if the worker dies
        between the promotion and :meth:`finish`, :func:`opsline.jobs.settle.settle` can
        still tell from the registry whether the alias moved to it."""
        with closing(self._open()) as db:
            db.execute(
                "UPDATE loop_actions SET new_version = ? WHERE id = ? AND outcome = ?",
                (version, action_id, RUNNING),
            )

    def set_job(self, action_id: str, job_id: str) -> None:
        with closing(self._open()) as db:
            db.execute("UPDATE loop_actions SET job_id = ? WHERE id = ?", (job_id, action_id))

    def for_job(self, job_id: str) -> Action | None:
        with closing(self._open()) as db:
            row = db.execute("SELECT * FROM loop_actions WHERE job_id = ?", (job_id,)).fetchone()
        return self._action(row) if row else None

    def recent(self, model: str | None = None, limit: int = 20) -> list[Action]:
        """Newest first."""
        query, args = "SELECT * FROM loop_actions", []
        if model is not None:
            query += " WHERE model = ?"
            args.append(model)
        query += " ORDER BY at DESC LIMIT ?"
        args.append(int(limit))
        with closing(self._open()) as db:
            return [self._action(r) for r in db.execute(query, args).fetchall()]

    @staticmethod
    def _action(row: sqlite3.Row) -> Action:
        data = dict(row)
        data["evidence"] = json.loads(data["evidence"])
        return Action(**data)
