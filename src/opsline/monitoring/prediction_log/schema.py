"""The prediction log's tables, row types and JSON codec, and where the log lives."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

PRIMARY, SHADOW = "primary", "shadow"
WRITE_COLUMNS = (
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


class LogTables:
    """What the store's parts share: the engine, the two tables and the writer's lock."""

    _engine: sa.Engine
    _lock: threading.Lock
    predictions: sa.Table
    feedback: sa.Table

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


def default_uri() -> str:
    """``$OPSLINE_PREDICTION_LOG_URI``, else SQLite in the workspace."""
    from opsline.workspace import home

    return os.environ.get("OPSLINE_PREDICTION_LOG_URI") or f"sqlite:///{home() / DB_FILE}"


def tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
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


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (drift, export) never block the writer; NORMAL: a commit is durable
    # against a process crash (the WAL is in the OS page cache), without an fsync each time.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def loads(text: str) -> Any:
    import orjson

    return orjson.loads(text)


def chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def safe_uri(uri: str) -> str:
    """``uri`` without a password, for messages."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(uri).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (an unparseable URI still gets a message, minus credentials)
        return uri.split("@")[-1]
