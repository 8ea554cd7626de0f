"""The metrics sampler behind /ui/monitor and /metrics/history: rates, quantiles, gauges."""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any

import pytest

from opsline.monitoring.history import MetricsHistory
from opsline.monitoring.metrics import ServingMetrics
from opsline.monitoring.promql import histogram_quantile
from opsline.recipes.registry import get_recipe, list_recipes
from opsline.serving.monitoring_page import (
    CHARTS,
    add_monitoring_page,
    chart_frame,
    headline_html,
)

from .conftest import stub_client

INF = math.inf
Sample = namedtuple("Sample", "name labels value")
Family = namedtuple("Family", "samples")


class FakeRegistry:
    """A registry whose samples the test sets directly (``{(name, labels): value}``)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def set(self, name: str, value: float, **labels: str) -> None:
        self.values[(name, tuple(sorted(labels.items())))] = value

    def collect(self) -> list[Family]:
        return [Family([Sample(n, dict(lb), v) for (n, lb), v in self.values.items()])]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# -- histogram_quantile --------------------------------------------------------------------
def test_quantile_interpolates_linearly_inside_the_bucket() -> None:
    # 10 observations in (0, 1], 10 in (1, 2]: the median is the top of the first bucket,
    # the 75th percentile half-way through the second.
    buckets = [(1.0, 10), (2.0, 20), (INF, 20)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.75, buckets) == pytest.approx(1.5)
    assert histogram_quantile(0.95, buckets) == pytest.approx(1.9)
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.2)  # first bucket from 0


def test_quantile_in_the_inf_bucket_is_the_largest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(0.1, 1), (0.5, 2), (INF, 10)]) == pytest.approx(0.5)


def test_quantile_of_an_empty_histogram_is_none() -> None:
    assert histogram_quantile(0.95, [(0.1, 0), (INF, 0)]) is None
    assert histogram_quantile(0.95, []) is None


def test_quantile_tolerates_non_monotonic_buckets() -> None:
    # A reset seen by one child only can leave a dip; it must not push the estimate down.
    assert histogram_quantile(0.5, [(1.0, 4), (2.0, 3), (INF, 8)]) == pytest.approx(1.0)


# -- rates and per-interval quantiles from a real ServingMetrics registry ----------------------
def test_rates_errors_and_latency_are_per_interval() -> None:
    metrics, clock = ServingMetrics(), Clock()
    history = MetricsHistory(
        metrics.registry, interval=2, clock=clock, ignored_routes=("/ui", "/metrics")
    )
    first = history.sample()
    assert first["requests_per_second"] is None  # nothing to difference against yet

    for _ in range(9):
        metrics.observe_request("/predict", "POST", 200, 0.03)  # bucket (0.025, 0.05]
    metrics.observe_request("/predict", "POST", 500, 0.3)  # bucket (0.25, 0.5]
    metrics.observe_request("/health", "GET", 200, 0.001)  # bucket (0, 0.005]
    metrics.observe_request("/health", "GET", 422, 0.001)
    for _ in range(50):  # the page's own polling: left out of every API figure
        metrics.observe_request("/ui", "POST", 200, 9.0)
        metrics.observe_request("/metrics", "GET", 200, 9.0)
    clock.now += 4
    point = history.sample()

    assert point["requests_per_second"] == pytest.approx(12 / 4)
    assert point["route_requests_per_second"] == pytest.approx({"/predict": 2.5, "/health": 0.5})
    assert point["error_percent"] == pytest.approx(100 / 12)
    assert point["client_error_percent"] == pytest.approx(100 / 12)
    # /predict: 10 observations; p50 rank 5 of 9 in (0.025, 0.05] -> 0.025 + 0.025 * 5/9.
    assert point["route_latency_p50_seconds"]["/predict"] == pytest.approx(0.025 + 0.025 * 5 / 9)
    # p95 rank 9.5: half-way through the one observation in (0.25, 0.5].
    assert point["route_latency_p95_seconds"]["/predict"] == pytest.approx(0.375)
    assert point["route_latency_p95_seconds"]["/health"] == pytest.approx(0.005 * 0.95)
    assert "/ui" not in point["route_requests_per_second"]

    # Next interval: only 2 fast requests; the slow one of before no longer counts.
    metrics.observe_request("/predict", "POST", 200, 0.03)
    metrics.observe_request("/predict", "POST", 200, 0.03)
    clock.now += 2
    point = history.sample()
    assert point["requests_per_second"] == pytest.approx(1.0)
    assert point["error_percent"] == 0.0
    assert point["route_latency_p95_seconds"]["/predict"] == pytest.approx(0.025 + 0.025 * 0.95)
    assert set(point["route_latency_p95_seconds"]) == {"/predict"}  # /health had none

    latest = history.latest()  # window covers both intervals
    assert latest["requests_total"] == 14
    assert latest["server_errors_total"] == 1
    assert latest["requests_per_second"] == pytest.approx(14 / 6)
    assert latest["window_seconds"] == pytest.approx(6)


def test_inference_tokens_and_model() -> None:
    metrics, clock = ServingMetrics(), Clock()
    history = MetricsHistory(metrics.registry, interval=1, clock=clock)
    history.sample()
    metrics.set_model("house_price", "3", "production", "gbm")
    metrics.observe_inference(0.002, batch_size=4)  # bucket (0.001, 0.0025]
    metrics.observe_inference(0.002, batch_size=6)
    metrics.observe_generation(tokens=50, seconds=1.0)
    clock.now += 5
    point = history.sample()
    assert point["predictions_per_second"] == pytest.approx(10 / 5)
    assert point["tokens_per_second"] == pytest.approx(50 / 5)
    assert point["inference_p95_seconds"] == pytest.approx(0.001 + 0.0015 * 0.95)
    latest = history.latest()
    assert latest["model"] == {
        "loaded": True,
        "name": "house_price",
        "version": "3",
        "alias": "production",
        "kind": "gbm",
    }
    assert latest["predictions_total"] == 10
    assert latest["generated_tokens_total"] == 50


# -- synthetic registries: resets, gauges, absent metrics --------------------------------------
def test_a_counter_reset_counts_from_zero_not_negative() -> None:
    registry, clock = FakeRegistry(), Clock()
    history = MetricsHistory(registry, interval=1, clock=clock)
    registry.set("opsline_http_requests_total", 100, route="/predict", method="POST", status="200")
    history.sample()
    registry.set(
        "opsline_http_requests_total", 6, route="/predict", method="POST", status="200"
    )  # the process restarted: 6 requests since
    clock.now += 2
    assert history.sample()["requests_per_second"] == pytest.approx(3.0)


def test_gauges_and_absent_metrics() -> None:
    registry, clock = FakeRegistry(), Clock()
    history = MetricsHistory(registry, interval=1, clock=clock)
    empty = history.sample()
    assert empty["system"]["cpu_percent"] is None and empty["system"]["gpu_memory_bytes"] == {}
    assert empty["training"] == {} and empty["tokens_per_second"] is None

    registry.set("opsline_system_cpu_percent", 37.5)
    registry.set("opsline_gpu_memory_allocated_bytes", 2**30, device="cuda:0")
    registry.set("opsline_training_loss", 0.25, model="house_price")
    registry.set("opsline_validation_loss", float("nan"), model="house_price")  # not yet
    registry.set("opsline_training_steps_total", 120, model="house_price")
    clock.now += 1
    point = history.sample()
    assert point["system"]["cpu_percent"] == 37.5
    assert point["system"]["gpu_memory_bytes"] == {"cuda:0": 2**30}
    assert point["training"] == {"house_price": {"loss": 0.25, "val_loss": None, "step": 120}}
    latest = history.latest()
    assert latest["model"] == {"loaded": None}  # no model metrics at all: unknown, not False


def test_the_ring_buffer_keeps_the_newest_points() -> None:
    registry, clock = FakeRegistry(), Clock()
    history = MetricsHistory(registry, interval=1, capacity=3, clock=clock)
    for _ in range(5):
        history.sample()
        clock.now += 1
    assert [p["time"] for p in history.points()] == [1002.0, 1003.0, 1004.0]
    assert [p["time"] for p in history.points(last=2)] == [1003.0, 1004.0]


# -- what the page draws from the points --------------------------------------------------------
def test_chart_frames_and_headline_show_the_figures() -> None:
    metrics, clock = ServingMetrics(), Clock()
    history = MetricsHistory(metrics.registry, interval=1, clock=clock)
    history.sample()
    for _ in range(4):
        metrics.observe_request("/predict", "POST", 200, 0.03)
    clock.now += 2
    history.sample()
    requests = next(c for c in CHARTS if c.name == "requests")
    frame = chart_frame(requests, history.points())
    assert list(frame["series"]) == ["/predict"] and list(frame["value"]) == [2.0]
    assert str(frame["time"].dtype).startswith("datetime64")
    assert chart_frame(requests, []).empty  # no data yet: an empty chart, not an error

    page = headline_html(history.latest())
    assert 'id="stat-requests-total" class="stat-value" data-value="4"' in page
    assert "no data yet" in page  # training: nothing running in this test
    assert headline_html({}).count("no data yet") >= 5  # before the first sample


def test_live_quality_and_drift_reach_the_page() -> None:
    from opsline.monitoring.drift import DriftResult
    from opsline.monitoring.drift_metrics import DriftCollector

    metrics, clock = ServingMetrics(), Clock()
    history = MetricsHistory(metrics.registry, interval=1, clock=clock)
    empty = headline_html(history.latest())
    assert 'id="stat-live-quality" class="stat-value" data-value="">no data yet' in empty
    assert 'id="stat-drift" class="stat-value" data-value="">no data yet' in empty

    metrics.live_quality.labels(metric="rmsle").set(0.315)
    metrics.live_quality.labels(metric="within_10pct").set(0.045)
    metrics.live_quality_rows.set(600)
    metrics.registry.register(
        DriftCollector(lambda: DriftResult(status="drift", rows=900, share=0.52, detected=True))
    )
    clock.now += 1
    point = history.sample()
    assert point["loop"] == {
        "quality": {"rmsle": 0.315, "within_10pct": 0.045},
        "quality_rows": 600,
        "drift_share": 0.52,
        "drift_detected": 1,
    }
    page = headline_html(history.latest())
    assert 'id="stat-live-quality" class="stat-value" data-value="0.315">rmsle 0.315' in page
    assert "within_10pct 0.045 · 600 labelled" in page
    assert 'id="stat-drift" class="stat-value" data-value="0.52">DRIFT' in page
    loop = next(c for c in CHARTS if c.name == "loop")
    assert dict(
        zip(chart_frame(loop, [point])["series"], chart_frame(loop, [point])["value"], strict=True)
    ) == {"live rmsle": 0.315, "live within_10pct": 0.045, "drift share": 0.52}


# -- GET /metrics/history -------------------------------------------------------------------
def test_history_endpoint_returns_the_sampled_series(stub_model_dir: Any) -> None:
    # A long interval: the background task samples once at startup, then only this test.
    with stub_client(str(stub_model_dir), history_interval_seconds=3600) as client:
        history = client.app.state.history
        history.sample()
        for x in (1, 2, 3):
            assert client.post("/predict", json={"x": x}).status_code == 200
        client.get("/metrics")  # a scrape: not API traffic
        history.sample()
        body = client.get("/metrics/history").json()
        assert body["interval_seconds"] == 3600
        assert body["latest"]["requests_total"] == 3
        assert body["latest"]["predictions_total"] == 3
        assert body["latest"]["model"]["loaded"] is True
        assert body["points"][-1]["route_requests_per_second"].keys() == {"/predict"}
        assert len(client.get("/metrics/history", params={"last": 1}).json()["points"]) == 1
        bad = client.get("/metrics/history", params={"last": 0})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "last"]


def test_the_app_samples_in_the_background(stub_model_dir: Any) -> None:
    import time

    with stub_client(str(stub_model_dir), history_interval_seconds=0.05) as client:
        deadline = time.monotonic() + 30
        while len(client.get("/metrics/history").json()["points"]) < 3:
            assert time.monotonic() < deadline, "the sampler never produced 3 points"
            time.sleep(0.05)
    assert client.app.state.history._task is None  # stopped with the app


# -- every recipe's UI gets the page ------------------------------------------------------
@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_ui_gets_the_monitoring_page(name: str) -> None:
    blocks = get_recipe(name).ui(lambda requests: [])
    add_monitoring_page(blocks, MetricsHistory(ServingMetrics().registry))
    assert ("monitor", "Monitoring", True) in blocks.pages
    config = blocks.get_config_file()
    ids = {
        c["props"].get("elem_id")
        for c in config["components"]
        if c["id"] in config["page"]["monitor"]["components"]
    }
    assert {"monitoring-headline", *(f"chart-{c.name}" for c in CHARTS)} <= ids
