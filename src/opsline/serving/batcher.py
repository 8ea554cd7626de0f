"""Adaptive micro-batching: one batcher per served model, one ``predict(list)`` per batch.

Every prediction route (``/predict``, ``/predict/batch``, OIP ``/v2/.../infer``, the UI)
hands its rows to :meth:`Batcher.submit`. One worker task takes what is queued and runs it
as a single ``predictor.predict`` call in the batcher's own thread, so N concurrent requests
cost one model call instead of N:

* **never waits when idle** — a lone request is dispatched at once;
* **gathers under load** — while a batch runs, the next one queues; if the model finished
  with work already waiting, the worker may wait for the batch to grow toward twice the
  last one, at most ``max_delay`` and at most a tenth of the last batch's cost (the idea of
  Triton's dynamic batcher, kept simple: a fast model barely waits, a slow one merges the
  clients that would otherwise take turns);
* **groups** — rows whose ``predictor.batch_key`` differ never share a batch (translation:
  decoding options); the oldest row's group goes first, so no group starves
  (:mod:`.batch_queue`);
* **isolates failures** — if a batch raises, its rows are retried one by one, so a bad row
  gets its own error and its neighbours still succeed;
* **bounded** — more than ``max_queue`` waiting rows is a :class:`QueueFullError` (503 with
  ``Retry-After``); a client that disconnects is dropped from the queue;
* **drains** — :meth:`stop` answers everything accepted before it returns (SIGTERM).

The model is read from the slot when a batch *starts*, so a hot reload swaps models between
batches and a batch in flight finishes on the model it started with. Predictors that
schedule concurrent requests themselves (text generation) bypass the queue: each call goes
straight to ``predict`` in a worker thread, up to ``predictor.max_concurrency`` at once.

This module is the worker loop; the queued rows are :mod:`.batch_queue`, one batch's run
and per-row retry :mod:`.batch_run`, waiting for answers :mod:`.batch_answers`, the
self-scheduling path :mod:`.batch_direct` and the refusals :mod:`.batch_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from opsline.errors import NoModelError
from opsline.serving.batch_answers import unwrap, wait_for_answers
from opsline.serving.batch_direct import DirectCalls
from opsline.serving.batch_errors import ClientDisconnectedError, QueueFullError, ShuttingDownError
from opsline.serving.batch_queue import Queue, Row, drop_cancelled, fail_all, take_group
from opsline.serving.batch_run import BatchOutcome, Hook, run_batch
from opsline.serving.request_id import row_ids

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from opsline.monitoring.metrics import ServingMetrics
    from opsline.serving.runtime import LoadedModel, ModelSlot

# The errors and the outcome are part of the batcher's interface; they live in their own
# modules (one concern each) and are re-exported here for callers and hooks.
__all__ = [
    "BatchOutcome",
    "Batcher",
    "ClientDisconnectedError",
    "QueueFullError",
    "ShuttingDownError",
]

log = logging.getLogger(__name__)


class Batcher:
    """Queue rows from concurrent requests and run them as batches on the slot's model.

    Args:
        slot: the app's model slot; read at the start of each batch.
        metrics: the app's collectors (rows per batch, time queued, queue depth).
        max_size: most rows per batch (a predictor's ``max_batch_size`` may lower it).
        max_delay_s: under load, how long the oldest row may wait for a batch to fill.
        max_queue: most rows waiting; above it :meth:`submit` raises ``QueueFullError``.
    """

    def __init__(
        self,
        slot: ModelSlot,
        metrics: ServingMetrics | None = None,
        *,
        max_size: int = 256,
        max_delay_s: float = 0.002,
        max_queue: int = 4096,
    ):
        self.slot = slot
        self.metrics = metrics
        self.max_size = max(1, int(max_size))
        self.max_delay_s = max(0.0, float(max_delay_s))
        self.max_queue = max(1, int(max_queue))
        self.hooks: list[Hook] = []
        self._queue: Queue = Queue()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._accepting = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._busy = False
        self._direct: DirectCalls | None = None  # self-scheduling predictors' calls

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wakeup = asyncio.Event()
        self._direct = DirectCalls(self.hooks, self.metrics)
        # One thread: batches run one at a time (a CPU-bound model gains nothing from two
        # on the cores it shares with the event loop), and a swap between batches is clean.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="opsline-batch")
        self._accepting = True
        self.loop = asyncio.get_running_loop()
        self._worker = self.loop.create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Stop accepting, answer every queued row, then end the worker (drain)."""
        self._accepting = False
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        if self._direct is not None:
            await self._direct.drained()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def queued(self) -> int:
        """Rows waiting for a batch."""
        return len(self._queue)

    def idle(self) -> bool:
        """No batch running and nothing queued or in flight (a safe moment to close a model)."""
        return (
            not self._busy
            and not self._queue
            and (self._direct is None or self._direct.in_flight == 0)
        )

    # -- submitting ---------------------------------------------------------------------
    async def submit(
        self,
        requests: Sequence[BaseModel],
        disconnected: Callable[[], Awaitable[object]] | None = None,
        *,
        itemized: bool = False,
    ) -> list[BaseModel]:
        """Predict ``requests`` (one HTTP call's rows) through the queue; responses in order.

        Each row is logged under the current request id (``<id>/<i>`` when there are several
        rows or ``itemized``); the batch hooks run before any row is answered.

        Raises:
            NoModelError / ModelLoadError: no model is loaded (503).
            InvalidRequestError: a row the model refused (422 naming the field; for several
                rows the field is prefixed with the row's index).
            QueueFullError: the queue is full (503 + ``Retry-After``).
            Exception: the model failed on a row (500).
        """
        model = self._model()
        if not self._accepting:
            raise ShuttingDownError("The server is shutting down; retry on another replica.")
        ids = row_ids(len(requests), itemized=itemized)
        if model.predictor.schedules_itself:
            assert self._direct is not None  # accepting implies started
            return await self._direct.predict(model, requests, ids)
        if len(self._queue) + len(requests) > self.max_queue:
            if self.metrics is not None:
                self.metrics.batch_rejected.inc()
            raise QueueFullError(len(self._queue), self.max_queue)
        loop = asyncio.get_running_loop()
        predictor = model.predictor
        rows = [
            Row(r, loop.create_future(), predictor.batch_key(r), i)
            for r, i in zip(requests, ids, strict=True)
        ]
        self._queue.extend(rows)
        self._set_depth()
        assert self._wakeup is not None
        self._wakeup.set()
        futures = [row.future for row in rows]
        try:
            results = await wait_for_answers(futures, disconnected)
        except (asyncio.CancelledError, ClientDisconnectedError):
            for row in rows:  # dropped from the queue; a running batch just finishes
                row.future.cancel()
            raise
        return unwrap(results, len(requests))

    def _model(self) -> LoadedModel:
        model = self.slot.model
        if model is None:
            raise self._model_error()
        return model

    # -- the worker -----------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        loaded_while_busy = False
        last_rows, last_seconds = 1, 0.0
        while True:
            drop_cancelled(self._queue)
            if not self._queue:
                if not self._accepting:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                loaded_while_busy = False
                continue
            model = self.slot.model
            if model is None:  # the model went away (failed start): fail what waits
                self._fail_all(self._model_error())
                continue
            limit = min(self.max_size, model.predictor.max_batch_size or self.max_size)
            # Under load, let the batch grow toward twice the last one: clients answered by
            # the last batch come back a moment later and would otherwise form their own
            # cohort forever (seen with translation: 8 clients as two alternating batches of
            # 4). The wait is bounded by max_delay and by a tenth of the last batch's cost, so
            # a fast model (a ~1 ms tabular batch) waits ~0.1 ms and a slow one (a 400 ms
            # translation batch) up to max_delay: at most ~10 % of throughput either way.
            want = min(limit, 2 * last_rows)
            wait = min(self.max_delay_s, 0.1 * last_seconds)
            if loaded_while_busy and wait > 0 and len(self._queue) < want:
                await self._gather(want, time.perf_counter() + wait)
            batch = self._take(limit)
            if not batch:
                continue
            self._busy = True
            model.inflight += 1  # the reloader closes a replaced model only at 0
            started = time.perf_counter()
            self._observe_queue(batch, started)
            try:
                results = await loop.run_in_executor(
                    self._executor,
                    run_batch,  # one predict call, rows retried alone on failure, then hooks
                    model,
                    [row.request for row in batch],
                    [row.request_id for row in batch],
                    [row.queued_at for row in batch],
                    self.hooks,
                    self.metrics,
                )
            except BaseException as error:  # noqa: BLE001 (the executor failed: never hang a row)
                results = [error] * len(batch)
            finally:
                self._busy = False
                model.inflight -= 1
            for row, result in zip(batch, results, strict=True):
                if row.future.done():
                    continue
                if isinstance(result, BaseException):
                    row.future.set_exception(result)
                else:
                    row.future.set_result(result)
            loaded_while_busy = bool(self._queue)
            last_rows, last_seconds = len(batch), time.perf_counter() - started

    async def _gather(self, limit: int, deadline: float) -> None:
        """Under load: wait until ``limit`` rows queue or ``deadline`` passes."""
        assert self._wakeup is not None
        while len(self._queue) < limit and self._accepting:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _take(self, limit: int) -> list[Row]:
        batch, self._queue = take_group(self._queue, limit)
        self._set_depth()
        return batch

    def _fail_all(self, error: Exception) -> None:
        fail_all(self._queue, error)
        self._set_depth()

    def _model_error(self) -> Exception:
        return NoModelError(self.slot.error or "No model is loaded.")

    # -- metrics ----------------------------------------------------------------------------
    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.batch_queue_depth.set(len(self._queue))

    def _observe_queue(self, batch: list[Row], now: float) -> None:
        if self.metrics is None:
            return
        self.metrics.batch_rows.observe(len(batch))
        for row in batch:
            self.metrics.batch_queue_seconds.observe(now - row.queued_at)
