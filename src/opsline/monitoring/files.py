"""Expose ``<workspace>/metrics/*.prom`` (training, validation …) on the server's ``/metrics``.

Each scrape parses every file and merges families by name, so two models' training files
become one ``opsline_training_loss`` family with two ``model`` series. Files are shown even
when old — they are the last known figures — and ``opsline_metrics_file_age_seconds{file}``
says how old. A file that cannot be parsed (half-written by a foreign writer, garbage) is
skipped with a log line: one bad file must never turn the scrape into a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from opsline.monitoring.textfile import SUFFIX, metrics_dir

log = logging.getLogger(__name__)


class FilesCollector(Collector):
    """Re-export the metrics files of a directory.

    Args:
        directory: a callable returning the directory (evaluated at each scrape, so the
            workspace can be chosen after the app is built); default the workspace's
            ``metrics/`` folder.
        exclude: family names never taken from files (the server's own), so a file cannot
            shadow or duplicate what the server measures itself.
    """

    def __init__(self, directory: Callable[[], Path] = metrics_dir, exclude: Collection[str] = ()):
        self._directory = directory
        self._exclude = frozenset(exclude)
        # path -> (file identity, parsed families or None): the server's history sampler
        # collects every 2 s and Prometheus scrapes too, while a file changes at most every
        # 2 s during training and never otherwise — parse (and warn about) each version once.
        self._cache: dict[Path, tuple[tuple[int, int, int], list[Metric] | None]] = {}

    def describe(self) -> list[Any]:
        return []  # the families depend on the files present at scrape time

    def _families(self, path: Path) -> list[Metric] | None:
        """The parsed file, re-read only when it was replaced (writers rename atomically)."""
        try:
            stat = path.stat()
        except OSError:  # deleted between listing and reading
            return None
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is None or cached[0] != identity:
            cached = self._cache[path] = (identity, self._parse(path))
        return cached[1]

    def _parse(self, path: Path) -> list[Metric] | None:
        from prometheus_client.parser import text_string_to_metric_families

        try:
            # The parser is lazy: consume it inside the try so errors surface here.
            return list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, IndexError) as error:
            log.warning("Skipping unparsable metrics file %s: %s", path, error)
            return None

    def collect(self) -> Iterator[Metric]:
        try:
            directory = self._directory()
            # Newest first: if two files carry the same series, the freshest value wins.
            paths = sorted(directory.glob(f"*{SUFFIX}"), key=_mtime, reverse=True)
        except OSError as error:
            log.warning("Cannot list metrics files: %s", error)
            return
        merged: dict[str, Metric] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        age = GaugeMetricFamily(
            "opsline_metrics_file_age_seconds",
            "Seconds since each exposed metrics file was written.",
            labels=["file"],
        )
        now = time.time()
        for stale in self._cache.keys() - set(paths):  # files deleted since the last scrape
            del self._cache[stale]
        for path in paths:
            families = self._families(path)
            if families is None:
                continue
            age.add_metric([path.name], max(0.0, now - _mtime(path)))
            for family in families:
                if family.name in self._exclude:
                    continue
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                elif target.type != family.type:
                    log.warning(
                        "Metrics file %s: %s is a %s elsewhere; skipped",
                        path.name,
                        family.name,
                        target.type,
                    )
                    continue
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        target.samples.append(sample)
        yield from merged.values()
        yield age


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # deleted between listing and reading
        return 0.0
