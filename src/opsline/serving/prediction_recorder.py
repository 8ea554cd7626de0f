"""Turn each answered batch into prediction-log rows, committed before the answers leave.

:class:`PredictionRecorder` is a batcher hook: it runs in the batch thread after
``predict`` and before the batch's futures resolve, so one transaction per batch (group
commit) covers every row the clients are about to receive. Streams (``/predict/stream``)
call :meth:`PredictionRecorder.record` when their generation ends.

The log must never cost a client its answer: a store that cannot be opened or written
(database down, disk full) is counted in ``opsline_prediction_log_errors_total`` and
``opsline_prediction_log_dropped_rows_total``, logged at most once a minute, and retried
after a short pause; the prediction itself is answered as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from opsline.monitoring.prediction_log import PRIMARY, LogRow, PredictionLog

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from opsline.monitoring.metrics import ServingMetrics
    from opsline.recipes.base import Recipe
    from opsline.serving.batcher import BatchOutcome
    from opsline.serving.runtime import LoadedModel
    from opsline.serving.settings import ServingSettings

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0  # one log line per minute while the store fails, not one per batch
RETRY_AFTER_S = 5.0  # after a failure, rows are dropped (and counted) this long
PRUNE_EVERY_S = 3600.0


class PredictionRecorder:
    """Write answered rows to the prediction log (a :class:`~opsline.serving.batcher.Batcher`
    hook). ``open``/``start``/``stop`` are called from the app's lifespan."""

    def __init__(
        self, recipe: Recipe, settings: ServingSettings, metrics: ServingMetrics | None = None
    ):
        self.recipe = recipe
        self.settings = settings
        self.metrics = metrics
        self.log: PredictionLog | None = None
        self.last_error: str | None = None
        self._paused_until = 0.0
        self._warned_at = -WARN_EVERY_S
        self._pruner: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        """Open the store; a failure is counted and retried on the next batch."""
        try:
            self.log = PredictionLog.open(self.settings.prediction_log_uri)
            self.last_error = None
        except Exception as error:  # noqa: BLE001 (a log failure must never fail a prediction)
            self._failed(error, rows=0)

    def start(self) -> None:
        """Prune now and every hour, on the running loop (in a worker thread)."""
        self._pruner = asyncio.get_running_loop().create_task(
            self._prune_forever(), name="prediction-log-pruner"
        )

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        if self.log is not None:
            await anyio.to_thread.run_sync(self.log.close)
            self.log = None

    async def _prune_forever(self) -> None:
        while True:
            await anyio.to_thread.run_sync(self.prune)
            await asyncio.sleep(PRUNE_EVERY_S)

    def prune(self) -> int:
        """Apply the retention settings once; returns rows deleted (0 on failure)."""
        if self.log is None:
            return 0
        try:
            return self.log.prune(
                max_age_days=self.settings.prediction_log_retention_days,
                max_rows=self.settings.prediction_log_max_rows,
            )
        except Exception as error:  # noqa: BLE001 (a log failure must never fail a prediction)
            self._failed(error, rows=0)
            return 0

    def describe(self) -> dict[str, Any]:
        """For ``GET /model``: where the log is and whether it works."""
        from opsline.monitoring.prediction_log import default_uri, safe_uri

        uri = (
            self.log.uri
            if self.log is not None
            else (self.settings.prediction_log_uri or default_uri())
        )
        return {
            "uri": safe_uri(uri),
            "ok": self.log is not None and self.last_error is None,
            "last_error": self.last_error,
        }

    # -- the hook ---------------------------------------------------------------------------
    def __call__(self, outcome: BatchOutcome) -> None:
        self.record(
            outcome.model, outcome.requests, outcome.results, outcome.request_ids, outcome.latencies
        )

    def record(
        self,
        model: LoadedModel,
        requests: Sequence[BaseModel],
        results: Sequence[Any],
        request_ids: Sequence[str],
        latencies: Sequence[float],
        role: str = PRIMARY,
    ) -> None:
        """Log the answered rows of one batch in one transaction (failed rows are skipped:
        they are errors, counted elsewhere, not predictions)."""
        answered = [i for i, result in enumerate(results) if not isinstance(result, BaseException)]
        if not answered:
            return
        if self.log is None or time.monotonic() < self._paused_until:
            if self.log is None and time.monotonic() >= self._paused_until:
                self.open()
            if self.log is None or time.monotonic() < self._paused_until:
                self._dropped(len(answered))
                return
        try:
            rows = self._rows(model, requests, results, request_ids, latencies, answered, role)
            self.log.write(rows)
        except Exception as error:  # noqa: BLE001 (a log failure must never fail a prediction)
            self._failed(error, rows=len(answered))
            return
        self.last_error = None
        if self.metrics is not None:
            self.metrics.prediction_log_rows.inc(len(rows))

    def _rows(
        self,
        model: LoadedModel,
        requests: Sequence[BaseModel],
        results: Sequence[Any],
        request_ids: Sequence[str],
        latencies: Sequence[float],
        answered: list[int],
        role: str,
    ) -> list[LogRow]:
        ok_requests = [requests[i] for i in answered]
        ok_results = [results[i] for i in answered]
        features = self.recipe.monitored_features(ok_requests, ok_results)
        keep_request = self.recipe.log_request_body and not self.recipe.request_in_features
        now = time.time()
        return [
            LogRow(
                request_id=request_ids[i],
                ts=now,
                model=model.name,
                version=model.version,
                features=feats,
                prediction=response.model_dump_json(),
                predicted_value=_value(response),
                latency_ms=latencies[i] * 1000.0,
                request=request.model_dump_json() if keep_request else None,
                role=role,
            )
            for i, request, response, feats in zip(
                answered, ok_requests, ok_results, features, strict=True
            )
        ]

    # -- failures ---------------------------------------------------------------------------
    def _failed(self, error: Exception, rows: int) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self._paused_until = time.monotonic() + RETRY_AFTER_S
        if self.metrics is not None:
            self.metrics.prediction_log_errors.inc()
        self._dropped(rows)
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "The prediction log failed (%s); predictions are still answered but "
                "not logged until it recovers.",
                self.last_error,
            )

    def _dropped(self, rows: int) -> None:
        if rows and self.metrics is not None:
            self.metrics.prediction_log_dropped.inc(rows)


def _value(response: Any) -> float | None:
    value = getattr(response, "predicted_value", None)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
