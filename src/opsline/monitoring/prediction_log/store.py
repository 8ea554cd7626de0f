"""The prediction log's store: the engine, the batch writer on the serving hot path, and
retention. Reads live in ``feedback`` and ``queries`` (mixed in)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opsline.errors import UsageError
from opsline.monitoring.prediction_log.feedback import FeedbackMixin
from opsline.monitoring.prediction_log.queries import QueriesMixin
from opsline.monitoring.prediction_log.schema import (
    WRITE_COLUMNS,
    LogRow,
    default_uri,
    dumps,
    safe_uri,
    sqlite_pragmas,
    tables,
)


class PredictionLog(FeedbackMixin, QueriesMixin):
    """The store behind the prediction log (thread-safe; one writer at a time).

    Args:
        uri: SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg2://…``).
    """

    def __init__(self, uri: str):
        import sqlalchemy as sa

        self.uri = uri
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._engine = sa.create_engine(uri, pool_pre_ping=not uri.startswith("sqlite"))
        except Exception as error:  # noqa: BLE001 (a malformed URL or a missing driver: one sentence)
            raise UsageError(f"Cannot use the prediction log at {safe_uri(uri)}: {error}") from None
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", sqlite_pragmas)
        metadata = sa.MetaData()
        self.predictions, self.feedback = tables(metadata)
        metadata.create_all(self._engine)
        # The hot path skips SQLAlchemy's per-call statement handling (~200 us a batch,
        # a quarter of a one-row /predict): one held DB-API connection, one fixed statement.
        marker = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = (
            f"INSERT INTO predictions ({', '.join(WRITE_COLUMNS)}) "
            f"VALUES ({', '.join([marker] * len(WRITE_COLUMNS))})"
        )
        self._writer: Any = None  # DB-API connection, opened on first write
        self._lock = threading.Lock()  # one writer: SQLite allows one anyway

    @classmethod
    def open(cls, uri: str | None = None) -> PredictionLog:
        """Open (and create if needed) the log at ``uri`` (default: :func:`default_uri`)."""
        return cls(uri or default_uri())

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    self._writer.close()
                self._writer = None
        self._engine.dispose()

    # -- writing (the serving hot path: once per batch) ------------------------------------
    def write(self, rows: Sequence[LogRow]) -> None:
        """Insert ``rows`` in one transaction (committed when this returns)."""
        if not rows:
            return
        values = [
            (
                r.request_id,
                r.ts,
                r.model,
                r.version,
                r.role,
                dumps(r.features),
                r.request,
                r.prediction,
                r.predicted_value,
                r.latency_ms,
            )
            for r in rows
        ]
        with self._lock:
            if self._writer is None:
                self._writer = self._engine.raw_connection()
            try:
                cursor = self._writer.cursor()
                cursor.executemany(self._insert_sql, values)
                cursor.close()
                self._writer.commit()
            except BaseException:
                # A broken connection (database restarted, disk full) is reopened next time.
                writer, self._writer = self._writer, None
                with contextlib.suppress(Exception):
                    writer.rollback()
                    writer.close()
                raise

    # -- retention ---------------------------------------------------------------------------
    def prune(self, *, max_age_days: float = 0, max_rows: int = 0) -> int:
        """Delete rows older than ``max_age_days`` and the oldest beyond ``max_rows`` (0 =
        no bound), and feedback left without a prediction. Returns predictions deleted."""
        import sqlalchemy as sa

        c = self.predictions.c
        deleted = 0
        with self._lock, self._engine.begin() as conn:
            if max_age_days > 0:
                cutoff = time.time() - max_age_days * 86400
                deleted += conn.execute(sa.delete(self.predictions).where(c.ts < cutoff)).rowcount
            if max_rows > 0:
                # The id of the newest row beyond the limit: everything up to it goes.
                edge = conn.execute(
                    sa.select(c.id).order_by(c.id.desc()).offset(max_rows).limit(1)
                ).scalar()
                if edge is not None:
                    deleted += conn.execute(
                        sa.delete(self.predictions).where(c.id <= edge)
                    ).rowcount
            if deleted:
                orphan = ~sa.exists().where(c.request_id == self.feedback.c.request_id)
                conn.execute(sa.delete(self.feedback).where(orphan))
        return deleted
