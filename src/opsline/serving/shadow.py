"""Shadow scoring: a candidate model answers every batch too, off the response path.

With ``OPSLINE_SHADOW_MODEL_URI`` set, :class:`ShadowScorer` loads that model beside the
served one and is added to the batcher's hooks *after* the prediction recorder. Per batch
its hook only appends the answered rows (requests + request ids) to a bounded queue — no
model call, no I/O — so clients get the primary's answers exactly as fast as without it.
Its own daemon thread then runs the candidate's ``predict`` on them and logs the results
as ``role="shadow"`` rows under the **primary's** model name with the candidate's version,
so :meth:`~opsline.monitoring.prediction_log.PredictionLog.pairs` joins both answers of a
request by its id (``opsline monitor compare``).

Guarantees:

* **never slows or breaks the primary** — the hook is O(rows) appends under a lock; a
  shadow that cannot be loaded is reported in ``GET /model`` (``monitoring.shadow``) and a
  log warning, and the server serves on; a shadow that raises is counted
  (``opsline_shadow_errors_total``), never propagated. The thread runs at a lower OS
  priority (Linux ``nice``), so on shared cores the primary's threads come first;
* **bounded memory** — at most ``shadow_max_queue`` rows wait; a batch that does not fit
  is skipped whole and counted (``opsline_shadow_skipped_rows_total``): under load the
  shadow sees a sample, not every request;
* **drains** — :meth:`ShadowScorer.stop` scores what is queued (up to a deadline) before
  the prediction log closes.

The candidate is loaded in its own thread after the primary, so a slow download never
delays startup; batches arriving meanwhile wait in the queue. An alias URI
(``models:/name@candidate``) is re-resolved every ``reload_interval_s`` and a new version
replaces the old one between shadow batches (no smoke test: a broken candidate only costs
its own comparisons). Streams (``/predict/stream``) are not shadowed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsline.monitoring.prediction_log import SHADOW

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from opsline.monitoring.metrics import ServingMetrics
    from opsline.recipes.base import Recipe
    from opsline.serving.batcher import BatchOutcome
    from opsline.serving.prediction_recorder import PredictionRecorder
    from opsline.serving.runtime import LoadedModel
    from opsline.serving.settings import ServingSettings

log = logging.getLogger(__name__)

LOADING, READY, FAILED, OFF = "loading", "ready", "failed", "off"
WARN_EVERY_S = 60.0  # one log line a minute while the shadow keeps failing
STOP_DRAIN_S = 10.0  # on shutdown, queued rows are scored for at most this long
NICE = 10  # the shadow thread's priority offset (Linux: per thread)


@dataclass(slots=True)
class _Item:
    """The answered rows of one primary batch, waiting for the shadow."""

    name: str  # the primary's registered name: the log's ``model`` column
    requests: list[BaseModel]
    request_ids: list[str]


class ShadowScorer:
    """Score every primary batch with a candidate model in a background thread (a batcher
    hook; see the module docstring). ``start``/``stop`` are called from the app's lifespan.

    Args:
        recipe: the served recipe (loads the candidate, shapes the log rows).
        settings: ``shadow_model_uri``, ``shadow_max_queue``, ``batch_max_size``,
            ``reload_interval_s`` and the registry settings.
        recorder: the app's prediction recorder; shadow rows go through it.
        metrics: the app's collectors (``opsline_shadow_*``).
    """

    def __init__(
        self,
        recipe: Recipe,
        settings: ServingSettings,
        recorder: PredictionRecorder,
        metrics: ServingMetrics | None = None,
    ):
        self.recipe, self.settings, self.recorder, self.metrics = (
            recipe,
            settings,
            recorder,
            metrics,
        )
        self.uri = settings.shadow_model_uri or ""
        self.max_queue = int(settings.shadow_max_queue)
        self.recheck_s = float(settings.reload_interval_s)
        self.model: LoadedModel | None = None
        self.state = LOADING
        self.error: str | None = None
        if not settings.prediction_log:
            self.state, self.error = (
                OFF,
                (
                    "the prediction log is off (OPSLINE_PREDICTION_LOG="
                    "false): shadow answers would have nowhere to go."
                ),
            )
        self.rows_scored = self.rows_skipped = self.rows_failed = 0
        self._items: collections.deque[_Item] = collections.deque()
        self._queued = 0  # rows in ``_items``
        self._busy = False
        self._stopping = False
        self._drain_deadline = float("inf")
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._log_as: dict[str, LoadedModel] = {}
        self._warned_at = -WARN_EVERY_S

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread: it loads the candidate, then scores what the hook queues."""
        if self.state == OFF or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="opsline-shadow", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_DRAIN_S) -> None:
        """Score what is queued (for at most ``timeout`` s), then end the thread and close
        the candidate. Blocking: call it from a worker thread."""
        with self._cond:
            self._stopping = True
            self._drain_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout + 5.0)
            self._thread = None
        with self._cond:
            self._skip(self._queued)  # left over after the deadline
            self._items.clear()
            self._queued = 0
        if self.model is not None:
            with contextlib.suppress(Exception):
                self.model.predictor.close()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until the candidate is loaded (or failed) and every queued row is scored;
        ``False`` if that took longer than ``timeout`` s (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.state == LOADING or self._items or self._busy:
                if self.state in (FAILED, OFF) and not self._busy:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def describe(self) -> dict[str, Any]:
        """For ``GET /model`` under ``monitoring.shadow``."""
        model = self.model
        return {
            "uri": self.uri,
            "state": self.state,
            "version": model.version if model is not None else None,
            "loaded": model is not None,
            "error": self.error,
            "rows_scored": self.rows_scored,
            "rows_skipped": self.rows_skipped,
            "rows_failed": self.rows_failed,
            "queued_rows": self._queued,
            "max_queue": self.max_queue,
        }

    # -- the hook (the batch thread, before the answers leave: keep it cheap) ----------------
    def __call__(self, outcome: BatchOutcome) -> None:
        if self.state in (FAILED, OFF) or self._stopping:
            return
        answered = [
            i for i, result in enumerate(outcome.results) if not isinstance(result, BaseException)
        ]
        if not answered:
            return
        item = _Item(
            outcome.model.name,
            [outcome.requests[i] for i in answered],
            [outcome.request_ids[i] for i in answered],
        )
        with self._cond:
            if self._queued + len(answered) > self.max_queue:
                self._skip(len(answered))
                return
            self._items.append(item)
            self._queued += len(answered)
            self._set_depth()
            self._cond.notify()

    # -- the shadow thread ------------------------------------------------------------------
    def _run(self) -> None:
        _lower_priority()  # before loading: threads the backend starts inherit it
        self._load()
        next_check = time.monotonic() + self.recheck_s
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    if self.recheck_s > 0 and self._follows_alias():
                        wait = next_check - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopping and (not self._items or time.monotonic() > self._drain_deadline):
                    return
                batch = self._take() if self.model is not None and self._items else None
                self._busy = batch is not None
            if batch is None:  # time to re-resolve the alias (or nothing loaded to score)
                self._recheck()
                next_check = time.monotonic() + self.recheck_s
                with self._cond:
                    if self.model is None:  # dropped: nothing can score them
                        self._skip(self._queued)
                        self._items.clear()
                        self._queued = 0
                        self._set_depth()
                    self._cond.notify_all()
                continue
            try:
                self._score(*batch)
            except Exception:  # the thread must survive anything (the log has its own guard)
                log.exception("Shadow scoring failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _take(self) -> tuple[str, list[BaseModel], list[str]]:
        """Queued rows of the oldest item's model name and batch key, up to a batch."""
        assert self.model is not None
        predictor = self.model.predictor
        limit = min(
            self.settings.batch_max_size, predictor.max_batch_size or self.settings.batch_max_size
        )
        first = self._items.popleft()
        key = predictor.batch_key(first.requests[0])
        requests, ids = list(first.requests), list(first.request_ids)
        while (
            self._items
            and self._items[0].name == first.name
            and len(requests) + len(self._items[0].requests) <= limit
            and predictor.batch_key(self._items[0].requests[0]) == key
        ):
            item = self._items.popleft()
            requests.extend(item.requests)
            ids.extend(item.request_ids)
        self._queued -= len(requests)
        self._set_depth()
        return first.name, requests, ids

    def _score(self, name: str, requests: list[BaseModel], ids: list[str]) -> None:
        from opsline.serving.runtime import predict_sync

        model = self.model
        assert model is not None
        started = time.perf_counter()
        try:
            # No metrics: the primary's inference figures must stay the primary's.
            results: list[Any] = predict_sync(model, requests, None)
        except Exception as error:  # noqa: BLE001 - a candidate's failure is counted, never raised
            results = [error] if len(requests) == 1 else [self._one(model, r) for r in requests]
        # The log's latency for a shadow row is its model call, not the time it queued
        # behind the primary: that is what tells the two models' costs apart.
        seconds = time.perf_counter() - started
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            self.rows_failed += len(failed)
            if self.metrics is not None:
                self.metrics.shadow_errors.inc(len(failed))
            self._warn(
                f"the shadow model failed on {len(failed)} of {len(requests)} rows "
                f"({type(failed[0]).__name__}: {failed[0]})"
            )
        scored = len(requests) - len(failed)
        self.rows_scored += scored
        if self.metrics is not None and scored:
            self.metrics.shadow_rows.inc(scored)
        self.recorder.record(
            self._log_model(name, model),
            requests,
            results,
            ids,
            [seconds] * len(requests),
            role=SHADOW,
        )

    @staticmethod
    def _one(model: LoadedModel, request: BaseModel) -> Any:
        from opsline.serving.runtime import predict_sync

        try:
            return predict_sync(model, [request], None)[0]
        except Exception as error:  # noqa: BLE001 - the row's own error, as in the batcher
            return error

    def _log_model(self, name: str, model: LoadedModel) -> LoadedModel:
        """The candidate as the log should name it: the primary's registered name (so both
        answers of a request pair up), the candidate's version — qualified with its own
        name when it is registered under another one (``grapevine_v2/3``)."""
        cached = self._log_as.get(name)
        if cached is None or cached.predictor is not model.predictor:
            version = model.version
            if version is not None and model.name != name:
                version = f"{model.name}/{version}"
            cached = dataclasses.replace(model, name=name, version=version)
            self._log_as[name] = cached
        return cached

    # -- loading ------------------------------------------------------------------------------
    def _load(self) -> None:
        from opsline.errors import OpslineError
        from opsline.serving.runtime import freeze_heap, load_model

        try:
            model = load_model(
                self.recipe, self.settings.model_copy(update={"model_uri": self.uri})
            )
        except Exception as error:  # noqa: BLE001 - a broken candidate never stops the server
            reason = (
                str(error)
                if isinstance(error, OpslineError)
                else f"{type(error).__name__}: {error}"
            )
            with self._cond:
                if self.model is None:
                    self.state = FAILED
                self.error = f"Could not load the shadow model {self.uri}: {reason}"
                self._cond.notify_all()
            log.warning("%s; the server keeps serving without it.", self.error)
            return
        old = self.model
        with self._cond:
            self.model, self.state, self.error = model, READY, None
            self._log_as.clear()
            self._cond.notify_all()
        if old is not None:
            with contextlib.suppress(Exception):
                old.predictor.close()
        freeze_heap()  # the candidate's objects are long-lived too (see freeze_heap)
        log.info(
            "Shadow model %s version %s loaded: it scores every batch off the response path.",
            self.uri,
            model.version,
        )

    def _follows_alias(self) -> bool:
        return self.uri.startswith("models:/") and "@" in self.uri

    def _recheck(self) -> None:
        """Load the version the alias names now, if it moved (or the last load failed)."""
        if not self._follows_alias():
            return
        from opsline.tracking.registry import current_version

        try:
            target = current_version(self.uri, self.settings.tracking_uri)
        except Exception as error:  # noqa: BLE001 - registry down: keep the loaded candidate
            self._warn(f"could not re-resolve {self.uri} ({error})")
            return
        current = self.model.version if self.model is not None else None
        if target != current:
            self._load()

    # -- bookkeeping ------------------------------------------------------------------------
    def _skip(self, rows: int) -> None:
        if rows <= 0:
            return
        self.rows_skipped += rows
        if self.metrics is not None:
            self.metrics.shadow_skipped.inc(rows)

    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.shadow_queue_rows.set(self._queued)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("Shadow %s: %s", self.uri, message)


def _lower_priority() -> None:
    """Nice the calling thread (Linux sets priorities per thread), best effort."""
    with contextlib.suppress(Exception):
        os.setpriority(
            os.PRIO_PROCESS,
            threading.get_native_id(),
            min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE),
        )
