"""Recent history of an app's Prometheus metrics, for the monitoring page and ``/metrics/history``.

Prometheus keeps history only if someone runs a Prometheus server; the built-in monitoring
page cannot assume one. :class:`MetricsHistory` therefore samples the app's own registry every
few seconds and keeps a bounded ring buffer of *derived* series, computed the way PromQL would:

* rates from counter deltas (``rate()``), a drop in a counter being a reset;
* quantiles from histogram bucket deltas (``histogram_quantile()``), so a p95 describes the
  requests of that interval, not everything since the server started;
* gauges as they are (CPU, memory, training loss …).

Metrics are read generically by sample name from ``registry.collect()``: any metric may be
absent (no GPU, no training running, not a text-generation recipe) and its series is then
``None`` / empty, never an error. This module never imports ``prometheus_client``; it only
needs an object with a ``collect()`` method.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opsline.monitoring.promql import (
    Snapshot,
    buckets_by,
    counter_delta,
    histogram_quantile,
    select,
    snapshot,
    total,
)

log = logging.getLogger(__name__)

REQUESTS = "opsline_http_requests_total"
REQUEST_LATENCY = "opsline_http_request_duration_seconds"
INFERENCE_LATENCY = "opsline_inference_duration_seconds"
PREDICTED_ITEMS = "opsline_inference_batch_size_sum"  # sum of batch sizes = items predicted
TOKENS = "opsline_generated_tokens_total"
ACTIVE_SEQUENCES = "opsline_generation_active_sequences"
MODEL_LOADED = "opsline_model_loaded"
MODEL_INFO = "opsline_model_info"
SYSTEM_GAUGES = {  # series name -> sample name
    "cpu_percent": "opsline_system_cpu_percent",
    "process_cpu_percent": "opsline_process_cpu_percent",
    "memory_used_bytes": "opsline_system_memory_used_bytes",
    "memory_total_bytes": "opsline_system_memory_total_bytes",
    "process_memory_bytes": "opsline_process_resident_memory_bytes",
}
GPU_MEMORY = "opsline_gpu_memory_allocated_bytes"
TRAINING_GAUGES = {  # series name -> sample name, all labelled {model}
    "step": "opsline_training_steps_total",
    "loss": "opsline_training_loss",
    "val_loss": "opsline_validation_loss",
    "progress": "opsline_training_epoch_progress",
    "samples_per_second": "opsline_training_samples_per_second",
    "running": "opsline_training_running",
    "failed_checks": "opsline_data_validation_failed_checks",
}
# The closed loop: live quality from feedback, and the last drift check's verdict.
LIVE_QUALITY = "opsline_live_quality"
LIVE_QUALITY_ROWS = "opsline_live_quality_rows"
DRIFT_SHARE = "opsline_drift_share"
DRIFT_DETECTED = "opsline_drift_detected"


# -- derived series -------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteFilter:
    """Which requests count as traffic: everything but the monitoring's own polling.

    The monitoring page polls through the UI mount and scrapers poll ``/metrics``: counting
    them would make the request rate grow with nobody using the service.
    """

    ignored: tuple[str, ...] = ()

    def __call__(self, labels: dict[str, str]) -> bool:
        return labels.get("route", "") not in self.ignored


def _rate(delta: float | None, seconds: float) -> float | None:
    return None if delta is None or seconds <= 0 else delta / seconds


def _ratio_percent(part: float | None, whole: float | None) -> float | None:
    """``part`` as % of ``whole``; no requests = no figure, requests but no errors = 0 %."""
    return None if not whole else 100.0 * (part or 0.0) / whole


def traffic(now: Snapshot, before: Snapshot, seconds: float, keep: RouteFilter) -> dict[str, Any]:
    """Request, error, latency, inference and token figures between two snapshots."""
    delta = counter_delta(now, before)
    per_route: dict[str, float] = {}
    for labels, value in select(delta, REQUESTS, keep):
        route = labels.get("route", "")
        per_route[route] = per_route.get(route, 0.0) + value
    requests = total(delta, REQUESTS, keep)
    server_errors = total(
        delta, REQUESTS, lambda lb: keep(lb) and lb.get("status", "").startswith("5")
    )
    client_errors = total(
        delta, REQUESTS, lambda lb: keep(lb) and lb.get("status", "").startswith("4")
    )
    latency = buckets_by(delta, REQUEST_LATENCY, "route", keep)
    everything = buckets_by(delta, REQUEST_LATENCY, None, keep).get("")
    inference = buckets_by(delta, INFERENCE_LATENCY).get("")
    return {
        "requests_per_second": _rate(requests, seconds),
        "route_requests_per_second": {r: v / seconds for r, v in per_route.items()}
        if seconds > 0
        else {},
        "error_percent": _ratio_percent(server_errors, requests),
        "client_error_percent": _ratio_percent(client_errors, requests),
        "latency_p50_seconds": histogram_quantile(0.5, everything) if everything else None,
        "latency_p95_seconds": histogram_quantile(0.95, everything) if everything else None,
        "route_latency_p50_seconds": _quantiles(0.5, latency),
        "route_latency_p95_seconds": _quantiles(0.95, latency),
        "inference_p95_seconds": histogram_quantile(0.95, inference) if inference else None,
        "predictions_per_second": _rate(total(delta, PREDICTED_ITEMS), seconds),
        "tokens_per_second": _rate(total(delta, TOKENS), seconds),
    }


def _quantiles(q: float, groups: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Per-group quantile, leaving out groups with no observations in the interval."""
    out = {}
    for name, buckets in groups.items():
        value = histogram_quantile(q, buckets)
        if value is not None:
            out[name] = value
    return out


def gauges(now: Snapshot) -> dict[str, Any]:
    """System, GPU, training and closed-loop gauges as they are now (``None`` / empty when
    absent)."""
    system: dict[str, Any] = {name: total(now, sample) for name, sample in SYSTEM_GAUGES.items()}
    system["gpu_memory_bytes"] = {
        labels.get("device", ""): value for labels, value in select(now, GPU_MEMORY)
    }
    training: dict[str, dict[str, float]] = {}
    for name, sample in TRAINING_GAUGES.items():
        for labels, value in select(now, sample):
            training.setdefault(labels.get("model", ""), {})[name] = value
    loop = {
        "quality": {labels.get("metric", ""): value for labels, value in select(now, LIVE_QUALITY)},
        "quality_rows": total(now, LIVE_QUALITY_ROWS),
        "drift_share": total(now, DRIFT_SHARE),
        "drift_detected": total(now, DRIFT_DETECTED),
    }
    return {"system": system, "training": training, "loop": loop}


def model_info(now: Snapshot) -> dict[str, Any]:
    """The served model from ``opsline_model_info`` / ``opsline_model_loaded``."""
    loaded = total(now, MODEL_LOADED)
    info = {"loaded": None if loaded is None else loaded >= 1}
    for labels, value in select(now, MODEL_INFO):
        if value >= 1:
            info.update({k: labels.get(k, "") for k in ("name", "version", "alias", "kind")})
    return info


def totals(now: Snapshot, keep: RouteFilter) -> dict[str, Any]:
    """Cumulative counts since the server started."""
    return {
        "requests_total": total(now, REQUESTS, keep),
        "server_errors_total": total(
            now, REQUESTS, lambda lb: keep(lb) and lb.get("status", "").startswith("5")
        ),
        "predictions_total": total(now, PREDICTED_ITEMS),
        "generated_tokens_total": total(now, TOKENS),
        "active_sequences": total(now, ACTIVE_SEQUENCES),
    }


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


# -- the sampler ----------------------------------------------------------------------------
class MetricsHistory:
    """Samples a registry every ``interval`` seconds into a ring buffer of derived points.

    Args:
        registry: anything with a Prometheus-style ``collect()`` (the app's registry).
        interval: seconds between samples.
        capacity: points kept (the oldest are dropped): 900 × 2 s = the last 30 minutes.
        window: seconds the headline figures (``latest()``) are computed over, so they
            stay meaningful when the last interval happened to see no request.
        ignored_routes: ``route`` labels left out of request figures (see ``RouteFilter``).
        clock: wall clock, injectable for tests.
    """

    def __init__(
        self,
        registry: Any,
        *,
        interval: float = 2.0,
        capacity: int = 900,
        window: float = 60.0,
        ignored_routes: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ):
        if interval <= 0 or capacity < 1 or window <= 0:
            raise ValueError("interval and window must be > 0 and capacity >= 1")
        self.registry = registry
        self.interval = float(interval)
        self.window = float(window)
        self.keep = RouteFilter(tuple(ignored_routes))
        self.clock = clock
        self._points: deque[dict[str, Any]] = deque(maxlen=capacity)
        # Raw snapshots for the headline window; +2 so the oldest is at least `window` old.
        self._raw: deque[tuple[float, Snapshot]] = deque(
            maxlen=max(2, math.ceil(window / interval) + 2)
        )
        self._lock = threading.Lock()  # sample() runs in a worker thread, readers elsewhere
        self._task: asyncio.Task[None] | None = None

    @property
    def capacity(self) -> int:
        return self._points.maxlen or 0

    def sample(self) -> dict[str, Any]:
        """Read the registry once and append a point; returns it.

        The first point has no rates (nothing to difference against): ``None``.
        """
        now_t, now = self.clock(), snapshot(self.registry)
        with self._lock:
            previous = self._raw[-1] if self._raw else None
            point: dict[str, Any] = {"time": now_t}
            if previous is not None:
                point.update(traffic(now, previous[1], now_t - previous[0], self.keep))
            else:
                point.update(traffic({}, {}, 0.0, self.keep))
            point.update(gauges(now))
            point = finite(point)
            self._raw.append((now_t, now))
            self._points.append(point)
        return point

    def points(self, last: int | None = None) -> list[dict[str, Any]]:
        """The buffered points, oldest first (the ``last`` ones if given)."""
        with self._lock:
            points = list(self._points)
        return points[-last:] if last else points

    def latest(self) -> dict[str, Any]:
        """Headline figures: totals now, rates and quantiles over the last ``window`` s."""
        with self._lock:
            raw = list(self._raw)
        if not raw:
            return {
                "time": None,
                "window_seconds": None,
                "model": {"loaded": None},
                **totals({}, self.keep),
                **traffic({}, {}, 0.0, self.keep),
                **gauges({}),
            }
        now_t, now = raw[-1]
        # The oldest snapshot still inside the window (or the oldest kept one).
        start_t, start = next(((t, s) for t, s in raw if now_t - t <= self.window), raw[0])
        if start_t == now_t and len(raw) > 1:
            start_t, start = raw[-2]
        seconds = now_t - start_t
        figures = (
            traffic(now, start, seconds, self.keep)
            if seconds > 0
            else traffic({}, {}, 0.0, self.keep)
        )
        return finite(
            {
                "time": now_t,
                "window_seconds": seconds or None,
                "model": model_info(now),
                **totals(now, self.keep),
                **figures,
                **gauges(now),
            }
        )

    # -- background sampling ------------------------------------------------------------
    def start(self) -> None:
        """Start sampling in the running event loop (call from the app's lifespan)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="opsline-history")

    async def stop(self) -> None:
        """Stop sampling and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                # Collectors may read files or query a GPU: keep that off the event loop.
                await asyncio.to_thread(self.sample)
            except Exception:
                log.exception("sampling the metrics registry failed")
            await asyncio.sleep(self.interval)
