"""Predictors that schedule concurrent requests themselves (text generation's continuous
batching) bypass the batcher's queue: each call goes straight to ``predict`` in a worker
thread, up to ``predictor.max_concurrency`` at once, with the same hooks and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsline.serving.batch_answers import unwrap
from opsline.serving.batch_run import Hook, run_batch

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from opsline.monitoring.metrics import ServingMetrics
    from opsline.serving.runtime import LoadedModel


class DirectCalls:
    """Concurrent ``predict`` calls for a self-scheduling predictor, counted for draining.

    Args:
        hooks: the batcher's hook list (shared: hooks added later apply too).
        metrics: the app's collectors, if any.
    """

    def __init__(self, hooks: list[Hook], metrics: ServingMetrics | None):
        self.hooks = hooks
        self.metrics = metrics
        self.in_flight = 0
        self._limit: asyncio.Semaphore | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def predict(
        self, model: LoadedModel, requests: Sequence[BaseModel], ids: list[str]
    ) -> list[BaseModel]:
        """``model``'s responses to ``requests`` (one call, in a worker thread)."""
        import anyio.to_thread

        if self._limit is None:  # the predictor says how many it interleaves
            self._limit = asyncio.Semaphore(model.predictor.max_concurrency or 16)
        async with self._limit:
            if self.metrics is not None:  # rows per predict call, as for queued batches
                self.metrics.batch_rows.observe(len(requests))
            self.in_flight += 1
            model.inflight += 1
            self._idle.clear()
            now = time.perf_counter()
            try:
                results = await anyio.to_thread.run_sync(
                    run_batch,
                    model,
                    list(requests),
                    ids,
                    [now] * len(ids),
                    self.hooks,
                    self.metrics,
                    abandon_on_cancel=False,
                )
                return unwrap(results, len(requests))
            finally:
                model.inflight -= 1
                self.in_flight -= 1
                if self.in_flight == 0:
                    self._idle.set()

    async def drained(self) -> None:
        """Return once no call is in flight."""
        await self._idle.wait()
