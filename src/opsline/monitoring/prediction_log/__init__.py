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

The parts: ``schema`` (tables, row types, where the log lives), ``store`` (the connection,
the writer, retention), ``feedback`` (ground truth and the joins with it), ``queries``
(counts, drift windows, shadow pairs, export).
"""

from opsline.monitoring.prediction_log.schema import (
    DB_FILE,
    PRIMARY,
    SHADOW,
    Labelled,
    LogRow,
    default_uri,
    safe_uri,
)
from opsline.monitoring.prediction_log.store import PredictionLog

__all__ = [
    "DB_FILE",
    "PRIMARY",
    "SHADOW",
    "Labelled",
    "LogRow",
    "PredictionLog",
    "default_uri",
    "safe_uri",
]
