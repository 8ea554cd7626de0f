"""Structured logs: ``OPSLINE_LOG_FORMAT=json`` makes every server log line one JSON object.

Each line has ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and the
``request_id`` of the request being served (``null`` outside one), read from the context
variable :mod:`opsline.serving.request_id` sets — so uvicorn's access line and the app's own
warnings about a request carry the id the client was answered with. A traceback is one
string field (``exc_info``), so a line is always one record for a log shipper.

The stdlib ``logging`` with one small formatter: no extra dependency. Applied with
:func:`logging.config.dictConfig` on the root logger, so libraries' records (MLflow, Python
warnings) are JSON lines too.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
from datetime import UTC, datetime
from typing import Any

from opsline.serving.request_id import current

LOGGERS = ("opsline", "uvicorn", "uvicorn.error", "uvicorn.access")


class JSONFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message, request_id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": current.get(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def json_log_config(level: str = "info") -> dict[str, Any]:
    """A ``dictConfig`` (also uvicorn's ``log_config``): the root logger writes JSON lines to
    stderr at ``level``, and uvicorn's loggers propagate to it (one line per record)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["json"], "level": level},
        "loggers": {name: {"handlers": [], "level": level, "propagate": True} for name in LOGGERS},
    }


def configure(log_format: str, level: str = "info") -> dict[str, Any] | None:
    """Apply the JSON logging config when ``log_format`` is ``json``; return it (for
    uvicorn's ``log_config``), or ``None`` for text (uvicorn's own format, unchanged)."""
    if log_format != "json":
        return None
    # MLflow (imported later, when the model loads) would give its logger its own text
    # handler; told not to, its records reach the root's JSON handler like everyone's.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    logging.captureWarnings(True)  # warnings.warn() as records, not raw stderr text
    config = json_log_config(level)
    logging.config.dictConfig(config)
    return config
