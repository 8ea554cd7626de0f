"""The prediction log: every answered prediction as a row, plus the ground truth fed back.

One SQL store, two engines through SQLAlchemy Core: SQLite in WAL mode at
``.opsline/predictions.db`` by default (one server), or PostgreSQL
(``postgresql+psycopg2://…``) when several replicas share one log. Two tables:

* ``predictions`` — request id, time, model name and version, ``role`` (``primary`` for
  the served model, ``shadow`` for a candidate scoring the same rows), the recipe's
  monitored features (JSON), the request (JSON, when the recipe keeps it), the response
  (JSON), its predicted value and latency;
* ``feedback`` — the actual outcome per request id (one row; a second feedback updates it).

The server writes each batch with :meth:`PredictionLog.write` in **one transaction before
the batch's responses are released** (group commit), so anything a client was answered is
already committed. SQLite runs with ``synchronous=NORMAL``: a committed WAL transaction is
in the operating system's page cache when ``commit`` returns, so it survives the process
being killed (``kill -9``); only a power cut could lose the last few. Reads (drift windows,
export, feedback joins) never run on the request path.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import sqlalchemy as sa

PRIMARY, SHADOW = "primary", "shadow"
_WRITE_COLUMNS = (
    "request_id",
    "ts",
    "model",
    "version",
    "role",
    "features",
    "request",
    "prediction",
    "predicted_value",
    "latency_ms",
)
DB_FILE = "predictions.db"


@dataclass(slots=True)
class LogRow:
    """One answered prediction (what :meth:`PredictionLog.write` stores)."""

    request_id: str
    ts: float  # unix seconds when the answer was ready
    model: str  # registered model name, e.g. ``house_price`` or ``grapevine``
    version: str | None
    features: dict[str, Any]  # the recipe's monitored features (scalars)
    prediction: str  # the response as JSON
    predicted_value: float | None = None
    latency_ms: float = 0.0  # queued → answered
    request: str | None = None  # the request as JSON (None when the recipe does not keep it)
    role: str = PRIMARY


@dataclass(slots=True)
class Labelled:
    """A logged prediction joined with its feedback."""

    request_id: str
    ts: float
    version: str | None
    request: str | None
    prediction: str
    predicted_value: float | None
    actual: Any
    features: str = "{}"


def default_uri() -> str:
    """``$OPSLINE_PREDICTION_LOG_URI``, else SQLite in the workspace."""
    from opsline.workspace import home

    return os.environ.get("OPSLINE_PREDICTION_LOG_URI") or f"sqlite:///{home() / DB_FILE}"


def _tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    import sqlalchemy as sa

    predictions = sa.Table(
        "predictions",
        metadata,
        # BIGINT on PostgreSQL; SQLite autoincrements only an INTEGER primary key.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("request", sa.Text),
        sa.Column("prediction", sa.Text, nullable=False),
        sa.Column("predicted_value", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.Index("ix_predictions_model_role_ts", "model", "role", "ts"),
        sa.Index("ix_predictions_request_id", "request_id"),
    )
    feedback = sa.Table(
        "feedback",
        metadata,
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("actual", sa.Text, nullable=False),  # JSON
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("updates", sa.Integer, nullable=False, default=0),
    )
    return predictions, feedback


class PredictionLog:
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
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        metadata = sa.MetaData()
        self.predictions, self.feedback = _tables(metadata)
        metadata.create_all(self._engine)
        # The hot path skips SQLAlchemy's per-call statement handling (~200 us a batch,
        # a quarter of a one-row /predict): one held DB-API connection, one fixed statement.
        marker = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = (
            f"INSERT INTO predictions ({', '.join(_WRITE_COLUMNS)}) "
            f"VALUES ({', '.join([marker] * len(_WRITE_COLUMNS))})"
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
                _dumps(r.features),
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

    # -- feedback -----------------------------------------------------------------------------
    def unknown_ids(self, request_ids: Iterable[str]) -> list[str]:
        """The ids in ``request_ids`` that no logged prediction carries."""
        import sqlalchemy as sa

        wanted = list(dict.fromkeys(request_ids))
        found: set[str] = set()
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted, 500):
                query = (
                    sa.select(self.predictions.c.request_id)
                    .distinct()
                    .where(self.predictions.c.request_id.in_(chunk))
                )
                found.update(conn.execute(query).scalars())
        return [i for i in wanted if i not in found]

    def add_feedback(self, items: Sequence[tuple[str, Any]]) -> list[bool]:
        """Store the actual outcome per request id; a later value replaces an earlier one.

        Returns, per item, whether it updated an existing feedback (False = created). The
        caller checks :meth:`unknown_ids` first; all items go in one transaction.
        """
        import sqlalchemy as sa

        now = time.time()
        updated: list[bool] = []
        with self._lock, self._engine.begin() as conn:
            for request_id, actual in items:
                result = conn.execute(
                    sa.update(self.feedback)
                    .where(self.feedback.c.request_id == request_id)
                    .values(actual=_dumps(actual), ts=now, updates=self.feedback.c.updates + 1)
                )
                if result.rowcount:
                    updated.append(True)
                else:
                    conn.execute(
                        sa.insert(self.feedback).values(
                            request_id=request_id, actual=_dumps(actual), ts=now, updates=0
                        )
                    )
                    updated.append(False)
        return updated

    # -- reading (off the request path) ------------------------------------------------------
    def _window(
        self,
        query: Any,
        model: str,
        role: str,
        last: int | None,
        since: float | None,
        version: str | None = None,
    ) -> Any:
        c = self.predictions.c
        query = query.where(c.model == model, c.role == role)
        if version is not None:
            query = query.where(c.version == version)
        if since is not None:
            query = query.where(c.ts >= since)
        query = query.order_by(c.ts.desc(), c.id.desc())
        if last is not None:
            query = query.limit(int(last))
        return query

    def count(self, model: str, *, since: float | None = None, role: str = PRIMARY) -> int:
        """Logged predictions of ``model`` (since a unix time)."""
        import sqlalchemy as sa

        c = self.predictions.c
        query = (
            sa.select(sa.func.count())
            .select_from(self.predictions)
            .where(c.model == model, c.role == role)
        )
        if since is not None:
            query = query.where(c.ts >= since)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def shadow_count(self, model: str, version: str | None) -> int:
        """Requests of ``model`` answered by both the primary and a shadow of ``version``.

        What the promotion gate checks (``promotion.shadow_min_requests``). ``version`` is
        as the server logged it: the candidate's version when it is registered under the
        served model's name (``"4"``), ``"<name>/<version>"`` under another name, ``None``
        for a directory.
        """
        import sqlalchemy as sa

        shadow = self.predictions.alias("shadow")
        primary = self.predictions.alias("primary_rows")
        matched = sa.exists().where(
            primary.c.request_id == shadow.c.request_id,
            primary.c.role == PRIMARY,
            primary.c.model == shadow.c.model,
        )
        query = sa.select(sa.func.count(sa.distinct(shadow.c.request_id))).where(
            shadow.c.model == model,
            shadow.c.role == SHADOW,
            matched,
            shadow.c.version.is_(None) if version is None else shadow.c.version == str(version),
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def features(
        self,
        model: str,
        *,
        last: int | None = None,
        since: float | None = None,
        role: str = PRIMARY,
    ) -> pd.DataFrame:
        """Monitored features of the window (the newest ``last`` rows and/or those since a
        unix time), oldest first: one column per feature."""
        import pandas as pd
        import sqlalchemy as sa

        query = self._window(sa.select(self.predictions.c.features), model, role, last, since)
        with self._engine.connect() as conn:
            rows = [_loads(f) for f in conn.execute(query).scalars()]
        rows.reverse()
        return pd.DataFrame.from_records(rows)

    def labelled(
        self,
        model: str,
        *,
        last: int | None = None,
        since: float | None = None,
        role: str = PRIMARY,
        version: str | None = None,
    ) -> list[Labelled]:
        """Predictions of the window (of one ``version``, if given) that have feedback,
        oldest first."""
        import sqlalchemy as sa

        p, f = self.predictions.c, self.feedback.c
        query = sa.select(
            p.request_id,
            p.ts,
            p.version,
            p.request,
            p.prediction,
            p.predicted_value,
            f.actual,
            p.features,
        ).join(self.feedback, f.request_id == p.request_id)
        query = self._window(query, model, role, last, since, version)
        with self._engine.connect() as conn:
            rows = [Labelled(*row[:6], _loads(row[6]), row[7]) for row in conn.execute(query)]
        rows.reverse()
        return rows

    def frame(self, model: str, *, since: float | None = None) -> pd.DataFrame:
        """Every logged row of ``model`` (both roles) with its feedback, oldest first, for
        export: metadata columns, the JSON columns, and one ``feature.<name>`` column each."""
        import pandas as pd
        import sqlalchemy as sa

        p, f = self.predictions.c, self.feedback.c
        query = (
            sa.select(
                p.request_id,
                p.ts,
                p.model,
                p.version,
                p.role,
                p.predicted_value,
                p.latency_ms,
                p.prediction,
                p.request,
                p.features,
                f.actual.label("actual"),
            )
            .outerjoin(self.feedback, f.request_id == p.request_id)
            .where(p.model == model)
        )
        if since is not None:
            query = query.where(p.ts >= since)
        query = query.order_by(p.ts, p.id)
        with self._engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        features = pd.DataFrame.from_records(
            [_loads(x) for x in frame.pop("features")], index=frame.index
        )
        frame["time"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
        return pd.concat([frame, features.add_prefix("feature.")], axis=1)

    def pairs(
        self, model: str, *, last: int | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Shadow rows joined with the primary row of the same request (and feedback)."""
        import sqlalchemy as sa

        shadow = self.predictions.alias("shadow")
        primary = self.predictions.alias("primary_rows")
        f = self.feedback.c
        query = (
            sa.select(
                shadow.c.request_id,
                shadow.c.ts,
                shadow.c.version,
                shadow.c.prediction,
                shadow.c.predicted_value,
                primary.c.version,
                primary.c.prediction,
                primary.c.predicted_value,
                f.actual,
            )
            .join(
                primary,
                sa.and_(
                    primary.c.request_id == shadow.c.request_id,
                    primary.c.role == PRIMARY,
                    primary.c.model == shadow.c.model,
                ),
            )
            .outerjoin(self.feedback, f.request_id == shadow.c.request_id)
            .where(shadow.c.model == model, shadow.c.role == SHADOW)
        )
        if since is not None:
            query = query.where(shadow.c.ts >= since)
        query = query.order_by(shadow.c.ts.desc(), shadow.c.id.desc())
        if last is not None:
            query = query.limit(int(last))
        keys = (
            "request_id",
            "ts",
            "shadow_version",
            "shadow_prediction",
            "shadow_value",
            "primary_version",
            "primary_prediction",
            "primary_value",
            "actual",
        )
        with self._engine.connect() as conn:
            rows = [dict(zip(keys, row, strict=True)) for row in conn.execute(query)]
        for row in rows:
            row["actual"] = None if row["actual"] is None else _loads(row["actual"])
        rows.reverse()
        return rows

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (drift, export) never block the writer; NORMAL: a commit is durable
    # against a process crash (the WAL is in the OS page cache), without an fsync each time.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _loads(text: str) -> Any:
    import orjson

    return orjson.loads(text)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def safe_uri(uri: str) -> str:
    """``uri`` without a password, for messages."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(uri).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (an unparseable URI still gets a message, minus credentials)
        return uri.split("@")[-1]
