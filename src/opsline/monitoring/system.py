"""Machine and process figures, read on every scrape (a custom Prometheus collector).

* ``opsline_system_cpu_percent`` — all cores, busy share since the previous scrape (0..100);
* ``opsline_system_memory_used_bytes`` / ``..._total_bytes`` — used = total - available,
  the memory other programs could not get without swapping (psutil's ``used`` leaves out
  reclaimable caches differently on every platform);
* ``opsline_process_cpu_percent`` — this server process since the previous scrape (100 =
  one core busy, so it can exceed 100 on several cores);
* ``opsline_process_resident_memory_bytes`` — this process's RSS;
* ``opsline_gpu_memory_allocated_bytes{device}`` / ``..._reserved_bytes{device}`` — only
  when torch is already imported (a model is served with it) and CUDA is available: the
  collector never imports torch itself, that alone would cost seconds and hundreds of MB.
"""

from __future__ import annotations

import sys
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


class SystemCollector(Collector):
    """CPU, memory and GPU memory, sampled when scraped.

    CPU percentages are over the interval since the previous scrape of *this* collector
    (primed at construction), like ``psutil.cpu_percent(interval=None)`` but with the
    reference kept per collector, so two apps in one process do not reset each other's.
    """

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)  # prime: the first call returns 0.0
        self._last_cpu = _busy_and_total(psutil.cpu_times())

    def describe(self) -> list[Any]:
        return []  # names are fixed, but GPU series come and go: skip registry checks

    def _system_cpu_percent(self) -> float:
        busy, total = _busy_and_total(self._psutil.cpu_times())
        last_busy, last_total = self._last_cpu
        self._last_cpu = (busy, total)
        if total - last_total <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * (busy - last_busy) / (total - last_total)))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        memory = self._psutil.virtual_memory()
        yield GaugeMetricFamily("opsline_system_cpu_percent",
                                "System-wide CPU utilisation since the previous scrape (0-100).",
                                value=self._system_cpu_percent())
        yield GaugeMetricFamily("opsline_system_memory_used_bytes",
                                "System memory in use (total minus available).",
                                value=float(memory.total - memory.available))
        yield GaugeMetricFamily("opsline_system_memory_total_bytes",
                                "Total system memory.", value=float(memory.total))
        yield GaugeMetricFamily("opsline_process_cpu_percent",
                                "This process's CPU use since the previous scrape "
                                "(100 = one core).",
                                value=self._process.cpu_percent(interval=None))
        yield GaugeMetricFamily("opsline_process_resident_memory_bytes",
                                "This process's resident memory.",
                                value=float(self._process.memory_info().rss))
        yield from gpu_memory_families()


def gpu_memory_families() -> Iterator[GaugeMetricFamily]:
    """Per-device CUDA memory, or nothing when torch is not loaded or has no GPU."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available():
            return
        devices = [str(i) for i in range(cuda.device_count())]
        allocated = GaugeMetricFamily("opsline_gpu_memory_allocated_bytes",
                                      "GPU memory held by tensors (torch).", labels=["device"])
        reserved = GaugeMetricFamily("opsline_gpu_memory_reserved_bytes",
                                     "GPU memory reserved by torch's caching allocator.",
                                     labels=["device"])
        for device in devices:
            allocated.add_metric([device], float(cuda.memory_allocated(int(device))))
            reserved.add_metric([device], float(cuda.memory_reserved(int(device))))
    except RuntimeError:  # a broken driver must not break the scrape
        return
    yield allocated
    yield reserved
