"""Hot reload: the server follows its registry alias, and a promotion is a deploy.

:class:`Reloader` polls ``models:/<name>@<alias>`` every ``reload_interval_s`` (and runs on
``POST /admin/reload``). When the alias points at another version it:

1. loads the candidate in a worker thread (download, weights, backend choice — a parity-
   failing ``model.onnx`` is never chosen, see :mod:`opsline.export.backend`);
2. smoke-tests it on ``recipe.sample_requests()``: one response per request, each a valid
   ``Response``, a finite ``predicted_value`` where the recipe has one;
3. swaps it into the slot. The batcher reads the slot when a batch *starts*, so the swap
   lands between batches and a batch in flight finishes on the old model;
4. closes the old model once nothing runs on it any more.

Any failure keeps the old model serving; the reason is in ``GET /model`` (``reload``) and
``opsline_model_reloads_total{outcome="failed"}``. One reload runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsline.errors import OpslineError
from opsline.serving.runtime import freeze_heap

if TYPE_CHECKING:  # pragma: no cover
    from opsline.monitoring.metrics import ServingMetrics
    from opsline.recipes.base import Recipe
    from opsline.serving.batcher import Batcher
    from opsline.serving.runtime import LoadedModel, ModelSlot
    from opsline.serving.settings import ServingSettings

log = logging.getLogger(__name__)

# How long a replaced model may keep running in-flight work before it is closed anyway.
CLOSE_GRACE_S = 120.0
HISTORY = 10  # attempts shown by GET /model


@dataclass
class ReloadAttempt:
    """One reload check, as ``GET /model`` shows it."""

    at: str
    trigger: str  # poll | admin | startup
    outcome: str  # swapped | unchanged | failed
    uri: str
    version: str | None = None
    previous: str | None = None
    reason: str = ""
    seconds: float = 0.0


class Reloader:
    """Follow the registry alias and swap proven models into ``slot``."""

    def __init__(
        self,
        recipe: Recipe,
        settings: ServingSettings,
        slot: ModelSlot,
        batcher: Batcher,
        metrics: ServingMetrics | None = None,
    ):
        self.recipe, self.settings, self.slot = recipe, settings, slot
        self.batcher, self.metrics = batcher, metrics
        self.interval = float(settings.reload_interval_s)
        self.attempts: deque[ReloadAttempt] = deque(maxlen=HISTORY)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start polling (nothing to do when the interval is 0)."""
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="reloader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._closing):
            await task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reload("poll")
            except Exception:  # the poller must survive anything a check throws
                log.exception("Reload check failed")

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` shows under ``reload``."""
        return {
            "follows": self.settings.resolved_model_uri,
            "interval_s": self.interval,
            "attempts": [asdict(a) for a in reversed(self.attempts)],
        }

    # -- one check ----------------------------------------------------------------------
    async def reload(self, trigger: str = "admin", force: bool = False) -> ReloadAttempt:
        """Check the alias; load, smoke-test and swap a new version. Never raises for a
        bad candidate: the attempt says what happened."""
        import anyio.to_thread

        async with self._lock:
            started = time.perf_counter()
            current = self.slot.model
            previous = current.version if current is not None else None
            uri = self.settings.resolved_model_uri
            attempt = ReloadAttempt(
                at=datetime.now(UTC).isoformat(timespec="seconds"),
                trigger=trigger,
                outcome="failed",
                uri=uri,
                previous=previous,
            )
            try:
                target = await anyio.to_thread.run_sync(self._target_version)
                attempt.version = target
                if not force and current is not None and target is None:
                    attempt.outcome = "unchanged"
                    attempt.reason = f"{uri} is a fixed location: nothing to follow."
                elif not force and current is not None and target == current.version:
                    attempt.outcome = "unchanged"
                    attempt.reason = f"version {target} is already serving."
                else:
                    candidate = await anyio.to_thread.run_sync(self._load_and_check)
                    attempt.version = candidate.version
                    self._swap(candidate)
                    attempt.outcome = "swapped"
                    attempt.reason = (
                        f"now serving version {candidate.version} "
                        f"(was {previous or 'none'}); backend "
                        f"{candidate.predictor.backend}."
                    )
            except OpslineError as error:
                attempt.reason = str(error)
            except Exception as error:  # a broken candidate must not take the server down
                log.exception("Reloading %s failed", uri)
                attempt.reason = f"{type(error).__name__}: {error}"
            attempt.seconds = round(time.perf_counter() - started, 3)
            self.attempts.append(attempt)
            if self.metrics is not None:
                self.metrics.model_reloads.labels(outcome=attempt.outcome).inc()
            if attempt.outcome != "unchanged":
                log.log(
                    logging.INFO if attempt.outcome == "swapped" else logging.WARNING,
                    "Reload (%s) %s: %s",
                    trigger,
                    attempt.outcome,
                    attempt.reason,
                )
            return attempt

    def _target_version(self) -> str | None:
        """The version the followed URI points at now (``None`` for a local directory)."""
        from opsline.tracking.registry import current_version

        return current_version(self.settings.resolved_model_uri, self.settings.tracking_uri)

    def _load_and_check(self) -> LoadedModel:
        """Load the candidate and smoke-test it (runs in a worker thread)."""
        from opsline.serving.runtime import load_model, predict_sync

        candidate = load_model(self.recipe, self.settings)
        try:
            samples = list(self.recipe.sample_requests())
            responses = predict_sync(candidate, samples, None)
            for response in responses:
                if not isinstance(response, self.recipe.Response):
                    raise OpslineError(
                        f"the smoke test got a {type(response).__name__}, "
                        f"not a {self.recipe.Response.__name__}."
                    )
                value = getattr(response, "predicted_value", 0.0)
                if not math.isfinite(float(value)):
                    raise OpslineError(f"the smoke test predicted a non-finite value ({value}).")
        except OpslineError as error:
            candidate.predictor.close()
            raise OpslineError(
                f"Version {candidate.version} failed its smoke test: {error}"
            ) from None
        except Exception as error:  # noqa: BLE001 (any candidate failure: the old model keeps serving)
            candidate.predictor.close()
            raise OpslineError(
                f"Version {candidate.version} failed its smoke test on "
                f"sample_requests(): {type(error).__name__}: {error}"
            ) from None
        if self.metrics is not None:
            candidate.predictor.bind_metrics(self.metrics)
        return candidate

    def _swap(self, candidate: LoadedModel) -> None:
        """Put ``candidate`` in the slot (between batches) and retire the old model."""
        old = self.slot.model
        self.slot.model, self.slot.error = candidate, None
        if self.metrics is not None:
            self.metrics.set_model(
                candidate.name, candidate.version, candidate.alias, candidate.kind
            )
        freeze_heap()  # the new model's objects are long-lived too (see freeze_heap)
        if old is not None:
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _retire(self, old: LoadedModel) -> None:
        import anyio.to_thread

        deadline = time.monotonic() + CLOSE_GRACE_S
        while old.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await anyio.to_thread.run_sync(old.predictor.close)
