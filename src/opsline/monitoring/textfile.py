"""Metrics files of processes other than the server (the node-exporter "textfile" way).

Training and validation run in CLI processes or job workers, never in the server, so each
writes its own registry to ``<workspace>/metrics/<kind>-<model>.prom``; the server exposes
every such file on its ``/metrics`` (see :mod:`opsline.monitoring.files`), so one scrape
target shows serving, training and validation figures together.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_DIRNAME = "metrics"
SUFFIX = ".prom"
# File names are built from model names: keep them to a safe alphabet (no path separators).
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def metrics_dir() -> Path:
    """``<workspace>/metrics`` (created on first use)."""
    from opsline.workspace import home

    path = home() / METRICS_DIRNAME
    path.mkdir(parents=True, exist_ok=True)
    return path


def metrics_path(kind: str, model: str) -> Path:
    """Where the ``kind`` (``training``, ``validation``) metrics of ``model`` are written."""
    return metrics_dir() / f"{kind}-{_UNSAFE.sub('_', model) or 'unnamed'}{SUFFIX}"


def write_registry(registry: Any, path: Path) -> bool:
    """Write ``registry`` to ``path`` atomically (temp file + rename, so a scrape never
    reads half a file). Returns False instead of raising: metrics must never stop a run."""
    from prometheus_client import write_to_textfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)
        return True
    except OSError as error:
        log.warning("Could not write metrics file %s: %s", path, error)
        return False


def read_samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a metrics file: (sample name, sorted labels) -> value; {} if the file is
    missing or unreadable (a garbage file only loses what it held)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
        return {
            (s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
    except (OSError, ValueError, UnicodeDecodeError) as error:
        if path.exists():
            log.warning("Ignoring unreadable metrics file %s: %s", path, error)
        return {}
