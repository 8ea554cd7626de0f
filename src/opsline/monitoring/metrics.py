"""Prometheus metrics of one serving app; the only module that imports ``prometheus_client``.

Every app gets its own ``CollectorRegistry`` so several apps (tests, a blue/green pair in one
process) never fight over the global default registry.

Metric names (all prefixed ``opsline_``):

* ``http_requests_total{route,method,status}`` — every HTTP request;
* ``http_request_duration_seconds{route,method}`` — whole request latency;
* ``inference_duration_seconds`` — ``predictor.predict`` only, so the cost of the model is
  visible apart from parsing, validation and serialisation;
* ``inference_batch_size`` — requests per ``predict`` call;
* ``predicted_value`` — each response's ``predicted_value``
  (see :meth:`ServingMetrics.observe_predictions`);
* ``model_info{name,version,alias,kind}`` and ``model_loaded`` — what is being served;
* batching: ``batch_rows`` (rows per batch), ``batch_queue_seconds`` (time queued),
  ``batch_queue_depth``, ``batch_rejected_total`` (503s for a full queue);
* ``model_reloads_total{outcome}`` — hot reloads: ``swapped``, ``unchanged``, ``failed``;
* shadow model (``OPSLINE_SHADOW_MODEL_URI``): ``shadow_rows_total`` (rows it scored),
  ``shadow_skipped_rows_total`` (not scored: its queue was full), ``shadow_errors_total``
  and ``shadow_queue_rows``;
* text generation: ``generated_tokens_total``, ``generation_tokens_per_second`` (per
  request), ``generation_batch_rows`` (sequences decoded together per step) and
  ``generation_active_sequences``;
* system (``opsline.monitoring.system``): ``system_cpu_percent``, ``system_memory_*``,
  ``process_cpu_percent``, ``process_resident_memory_bytes``, GPU memory when present, plus
  prometheus_client's standard ``process_*`` series;
* every ``<workspace>/metrics/*.prom`` file (training, validation; see
  ``opsline.monitoring.files``) and ``metrics_file_age_seconds{file}``;
* data drift, added by the server's drift monitor (``opsline.monitoring.drift_metrics``):
  ``drift_share``, ``drift_detected``, ``feature_drift_score{feature}`` and friends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# Request latency: 5 ms … 10 s covers a fast tabular model up to a slow generative one.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
QUEUE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
TOKENS_PER_SECOND_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
# Used when the recipe does not say (``Recipe.predicted_value_buckets``): wide, roughly
# log-spaced, so probabilities, counts and prices all land in some useful bucket.
DEFAULT_VALUE_BUCKETS = (
    0.01,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1e3,
    2.5e3,
    5e3,
    1e4,
    2.5e4,
    5e4,
    1e5,
    2e5,
    3e5,
    5e5,
    1e6,
    1e7,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServingMetrics:
    """The collectors of one app, with small helpers the server calls."""

    def __init__(self, value_buckets: Sequence[float] | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "opsline_http_requests",
            "HTTP requests handled.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "opsline_http_request_duration_seconds",
            "HTTP request latency, whole request.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_latency = Histogram(
            "opsline_inference_duration_seconds",
            "Time spent in predictor.predict per batch.",
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "opsline_inference_batch_size",
            "Number of requests per predictor.predict call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.predicted_value = Histogram(
            "opsline_predicted_value",
            "Predicted values (the response's predicted_value).",
            buckets=tuple(value_buckets or DEFAULT_VALUE_BUCKETS),
            registry=r,
        )
        self.inference_errors = Counter(
            "opsline_inference_errors", "predictor.predict calls that raised.", registry=r
        )
        self.model_info = Gauge(
            "opsline_model_info",
            "The served model; value 1 for the loaded one.",
            ["name", "version", "alias", "kind"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "opsline_model_loaded", "1 when a model is loaded and /ready answers 200.", registry=r
        )
        self.generated_tokens = Counter(
            "opsline_generated_tokens", "Tokens generated by text-generation requests.", registry=r
        )
        self.generation_speed = Histogram(
            "opsline_generation_tokens_per_second",
            "Tokens per second of each finished generation.",
            buckets=TOKENS_PER_SECOND_BUCKETS,
            registry=r,
        )
        self.generation_rows = Histogram(
            "opsline_generation_batch_rows",
            "Sequences decoded together in one decoding step.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.active_sequences = Gauge(
            "opsline_generation_active_sequences",
            "Generations currently being decoded.",
            registry=r,
        )
        self.batch_rows = Histogram(
            "opsline_batch_rows",
            "Rows the batcher ran together in one predict call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_queue_seconds = Histogram(
            "opsline_batch_queue_seconds",
            "Time a row waited in the batcher's queue.",
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.batch_queue_depth = Gauge(
            "opsline_batch_queue_depth", "Rows waiting in the batcher's queue.", registry=r
        )
        self.batch_rejected = Counter(
            "opsline_batch_rejected",
            "Requests refused with 503 because the queue was full.",
            registry=r,
        )
        self.model_reloads = Counter(
            "opsline_model_reloads",
            "Hot-reload attempts by outcome (swapped, unchanged, failed).",
            ["outcome"],
            registry=r,
        )
        self.prediction_log_rows = Counter(
            "opsline_prediction_log_rows", "Predictions written to the prediction log.", registry=r
        )
        self.prediction_log_errors = Counter(
            "opsline_prediction_log_errors",
            "Prediction-log writes (or opens) that failed; the predictions were still answered.",
            registry=r,
        )
        self.prediction_log_dropped = Counter(
            "opsline_prediction_log_dropped_rows",
            "Answered predictions not logged because the log failed.",
            registry=r,
        )
        self.feedback = Counter(
            "opsline_feedback",
            "Ground-truth values received by POST /feedback, by outcome (created, updated).",
            ["outcome"],
            registry=r,
        )
        self.live_quality = Gauge(
            "opsline_live_quality",
            "Quality of logged predictions against feedback over the "
            "window (e.g. rmsle, within_10pct, accuracy).",
            ["metric"],
            registry=r,
        )
        self.live_quality_rows = Gauge(
            "opsline_live_quality_rows",
            "Labelled predictions the live quality is computed on.",
            registry=r,
        )
        self.shadow_rows = Counter(
            "opsline_shadow_rows",
            "Rows the shadow model scored (off the response path).",
            registry=r,
        )
        self.shadow_skipped = Counter(
            "opsline_shadow_skipped_rows",
            "Answered rows the shadow did not score because its "
            "queue was full (or it could not be loaded).",
            registry=r,
        )
        self.shadow_errors = Counter(
            "opsline_shadow_errors", "Rows the shadow model failed on.", registry=r
        )
        self.shadow_queue_rows = Gauge(
            "opsline_shadow_queue_rows", "Rows waiting for the shadow model.", registry=r
        )
        self._add_process_collectors(r)  # keep last: it snapshots the names defined above

    @staticmethod
    def _add_process_collectors(registry: CollectorRegistry) -> None:
        """System figures, the standard ``process_*`` series, and the training/validation
        metrics files of the workspace (see :mod:`opsline.monitoring.files`)."""
        from opsline.monitoring.files import FilesCollector
        from opsline.monitoring.system import SystemCollector

        own = {family.name for family in registry.collect()}  # files may not shadow these
        registry.register(SystemCollector())
        ProcessCollector(registry=registry)
        registry.register(FilesCollector(exclude=own))

    # -- model ------------------------------------------------------------------------
    def set_model(
        self, name: str, version: str | None, alias: str | None, kind: str | None
    ) -> None:
        """Record which model is served (replaces any previous one)."""
        self.model_info.clear()
        self.model_info.labels(
            name=name, version=version or "", alias=alias or "", kind=kind or ""
        ).set(1)
        self.model_loaded.set(1)

    def clear_model(self) -> None:
        """No model is served."""
        self.model_info.clear()
        self.model_loaded.set(0)

    # -- inference --------------------------------------------------------------------
    def observe_inference(self, seconds: float, batch_size: int) -> None:
        self.inference_latency.observe(seconds)
        self.batch_size.observe(batch_size)

    def observe_predictions(self, responses: Iterable[Any]) -> None:
        """Observe each response's ``predicted_value`` (field or property) if it has one.

        Recipes opt in by giving their Response a float ``predicted_value``; values that are
        missing, not numbers or not finite are skipped rather than poisoning the histogram.
        """
        for response in responses:
            # The contract's HasPredictedValue; a Response without it is skipped.
            value = getattr(response, "predicted_value", None)
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                self.predicted_value.observe(float(value))

    # -- text generation ----------------------------------------------------------------
    def observe_generation(self, tokens: int, seconds: float) -> None:
        """One finished generation: its token count and speed."""
        self.generated_tokens.inc(max(int(tokens), 0))
        if tokens > 0 and seconds > 0:
            self.generation_speed.observe(tokens / seconds)

    def observe_decode_step(self, rows: int) -> None:
        """One decoding step of the batching engine over ``rows`` sequences."""
        self.generation_rows.observe(rows)

    def set_active_sequences(self, count: int) -> None:
        self.active_sequences.set(count)

    # -- HTTP -------------------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.request_latency.labels(route=route, method=method).observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware counting and timing every HTTP request.

    The ``route`` label is the matched route template (``/predict``), never the raw path, so
    label cardinality stays bounded; everything under a mounted sub-app (the Gradio UI) is
    labelled with the mount prefix, and unmatched paths with ``unmatched``.
    """

    def __init__(self, app: Any, metrics: ServingMetrics, mounts: Sequence[str] = ()):
        self.app = app
        self.metrics = metrics
        self.mounts = tuple(mounts)

    def _route(self, scope: dict[str, Any]) -> str:
        path = scope.get("path", "")
        for prefix in self.mounts:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return prefix
        route = scope.get("route")  # set by FastAPI's APIRoute while routing
        if route is None:  # plain Starlette routes (/openapi.json, /docs) don't set it
            route = self._match(scope)
        return getattr(route, "path", None) or "unmatched"

    @staticmethod
    def _match(scope: dict[str, Any]) -> Any:
        from starlette.routing import Match

        router = getattr(scope.get("app"), "router", None)
        for route in getattr(router, "routes", ()):
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return route
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app raises before starting a response
        start = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(
                self._route(scope), scope.get("method", ""), status, time.perf_counter() - start
            )
