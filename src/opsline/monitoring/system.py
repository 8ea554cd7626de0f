"""Machine and process figures, read on every scrape (a custom Prometheus collector).

* ``opsline_system_cpu_percent`` — all cores, busy share over the last 5–10 s (0..100);
* ``opsline_system_memory_used_bytes`` / ``..._total_bytes`` — used = total - available,
  the memory other programs could not get without swapping (psutil's ``used`` leaves out
  reclaimable caches differently on every platform);
* ``opsline_process_cpu_percent`` — this server process over the last 5–10 s (100 = one
  core busy, so it can exceed 100 on several cores);
* ``opsline_process_resident_memory_bytes`` — this process's RSS;
* ``opsline_gpu_memory_allocated_bytes{device}`` / ``..._reserved_bytes{device}`` — only
  when torch is already imported (a model is served with it) and CUDA is available: the
  collector never imports torch itself, that alone would cost seconds and hundreds of MB.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


def _busy_and_total(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds from ``psutil.cpu_times()``, as psutil computes them."""
    total = sum(times)
    # On Linux guest time is already counted in user time; don't count it twice.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


#: CPU percentages cover the last WINDOW to 2 x WINDOW seconds (see SystemCollector).
WINDOW = 5.0


class SystemCollector(Collector):
    """CPU, memory and GPU memory, sampled when scraped.

    Several readers collect the same registry (the UI's 2 s sampler, Prometheus every 15 s),
    so "since the previous read" would give each reader a window cut short by the others.
    Instead CPU percentages are measured from an anchor reading at least ``window`` seconds
    old (two anchors, advanced every ``window`` seconds): the same recent average whoever
    reads, and the state is kept per collector so two apps in one process are independent.
    """

    def __init__(self, window: float = WINDOW, clock: Any = time.monotonic) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._window = float(window)
        self._clock = clock
        self._anchors = [self._reading()]

    def describe(self) -> list[Any]:
        return []  # names are fixed, but GPU series come and go: skip registry checks

    def _reading(self) -> tuple[float, float, float, float]:
        """(time, system busy CPU s, system total CPU s, this process's CPU s)."""
        busy, total = _busy_and_total(self._psutil.cpu_times())
        own = self._process.cpu_times()
        return self._clock(), busy, total, own.user + own.system

    def _cpu_percents(self) -> tuple[float, float]:
        """(system %, process %) since the oldest anchor; advances the anchors."""
        now = self._reading()
        then = self._anchors[0]
        if now[0] - self._anchors[-1][0] >= self._window:
            self._anchors = [self._anchors[-1], now]
        elapsed, total = now[0] - then[0], now[2] - then[2]
        system = 100.0 * (now[1] - then[1]) / total if total > 0 else 0.0
        process = 100.0 * (now[3] - then[3]) / elapsed if elapsed > 0 else 0.0
        return max(0.0, min(100.0, system)), max(0.0, process)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        memory = self._psutil.virtual_memory()
        system_cpu, process_cpu = self._cpu_percents()
        yield GaugeMetricFamily(
            "opsline_system_cpu_percent",
            "System-wide CPU utilisation over the last 5-10 s (0-100).",
            value=system_cpu,
        )
        yield GaugeMetricFamily(
            "opsline_system_memory_used_bytes",
            "System memory in use (total minus available).",
            value=float(memory.total - memory.available),
        )
        yield GaugeMetricFamily(
            "opsline_system_memory_total_bytes", "Total system memory.", value=float(memory.total)
        )
        yield GaugeMetricFamily(
            "opsline_process_cpu_percent",
            "This process's CPU use over the last 5-10 s (100 = one core).",
            value=process_cpu,
        )
        yield GaugeMetricFamily(
            "opsline_process_resident_memory_bytes",
            "This process's resident memory.",
            value=float(self._process.memory_info().rss),
        )
        yield from gpu_memory_families()


def gpu_memory_families() -> Iterator[GaugeMetricFamily]:
    """Per-device CUDA memory, or nothing when torch is not loaded or has no GPU."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available():
            return
        devices = [str(i) for i in range(cuda.device_count())]
        allocated = GaugeMetricFamily(
            "opsline_gpu_memory_allocated_bytes",
            "GPU memory held by tensors (torch).",
            labels=["device"],
        )
        reserved = GaugeMetricFamily(
            "opsline_gpu_memory_reserved_bytes",
            "GPU memory reserved by torch's caching allocator.",
            labels=["device"],
        )
        for device in devices:
            allocated.add_metric([device], float(cuda.memory_allocated(int(device))))
            reserved.add_metric([device], float(cuda.memory_reserved(int(device))))
    except RuntimeError:  # a broken driver must not break the scrape
        return
    yield allocated
    yield reserved
