"""SystemCollector: CPU, memory, GPU memory (only when torch+CUDA are already there)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsline.monitoring.metrics import ServingMetrics
from opsline.monitoring.system import SystemCollector


def scrape(collector: SystemCollector) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_cpu_and_memory_figures_are_plausible() -> None:
    collector = SystemCollector()
    sum(i * i for i in range(2_000_000))  # burn some CPU in this process between scrapes
    s = scrape(collector)
    assert 0 <= s[("opsline_system_cpu_percent", ())] <= 100
    # The busy loop above ran in this process, so its CPU share since priming is not zero.
    assert s[("opsline_process_cpu_percent", ())] > 0
    total = s[("opsline_system_memory_total_bytes", ())]
    assert 0 < s[("opsline_system_memory_used_bytes", ())] < total
    assert 0 < s[("opsline_process_resident_memory_bytes", ())] < total


def test_frequent_readers_do_not_shorten_the_cpu_window() -> None:
    # The UI sampler reads every 2 s and Prometheus every 15 s: a busy spell must show in
    # both, not only in whichever reader came first after it.
    clock = [0.0]
    collector = SystemCollector(window=5.0, clock=lambda: clock[0])
    clock[0] = 1.0
    sum(i * i for i in range(2_000_000))  # busy spell between t=0 and t=1
    first = scrape(collector)[("opsline_process_cpu_percent", ())]
    clock[0] = 2.0  # another reader, right after, with no work in between
    second = scrape(collector)[("opsline_process_cpu_percent", ())]
    assert first > 0 and second > 0  # both measured from the t=0 anchor
    assert second == pytest.approx(first / 2, rel=0.5)  # same CPU seconds over twice the time


def test_no_gpu_series_without_cuda() -> None:
    s = scrape(SystemCollector())
    assert not [k for k in s if k[0].startswith("opsline_gpu_")]


def test_gpu_memory_per_device_when_torch_has_cuda(monkeypatch) -> None:
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 2,
        memory_allocated=lambda i: 100.0 * (i + 1),
        memory_reserved=lambda i: 1000.0 * (i + 1),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    s = scrape(SystemCollector())
    assert s[("opsline_gpu_memory_allocated_bytes", (("device", "0"),))] == 100
    assert s[("opsline_gpu_memory_allocated_bytes", (("device", "1"),))] == 200
    assert s[("opsline_gpu_memory_reserved_bytes", (("device", "1"),))] == 2000


def test_collector_never_imports_torch() -> None:
    code = (
        "import sys; from opsline.monitoring.system import SystemCollector; "
        "list(SystemCollector().collect()); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"


def test_serving_metrics_include_system_and_process_series() -> None:
    text = ServingMetrics().render().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {
        "opsline_system_cpu_percent",
        "opsline_system_memory_used_bytes",
        "opsline_process_resident_memory_bytes",
    } <= names
    assert "process_cpu_seconds_total" in names  # prometheus_client's ProcessCollector
