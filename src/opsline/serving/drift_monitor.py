"""The server's drift monitor: compare logged requests with the served model's reference.

:class:`DriftMonitor` recomputes drift every ``drift_interval_s`` (and on ``GET
/drift?refresh=true``) in a worker thread, never on the request path:

1. the window of logged requests (``drift_window``: the last N or a time span) is read from
   the prediction log (its own connection);
2. the reference is the served model's ``reference.parquet``, re-read when a hot reload
   swaps the model;
3. :func:`opsline.monitoring.drift.compute_drift` gives the verdict (or why there is none),
   kept in ``latest`` and exported as ``opsline_drift_*`` series;
4. ``listeners`` are called with the result (e.g. the retrain policy);
5. when the verdict of a model's run changes (and on the first verdict after start), the
   Evidently JSON and HTML reports are logged to that run under ``drift/`` — not every
   interval, so a quiet server does not fill the tracking store.

One check runs at a time; callers arriving during a check share its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsline.monitoring.drift import (
    ERROR,
    NO_MODEL,
    NO_REFERENCE,
    REPORT_DIR,
    DriftResult,
    compute_drift,
    describe_window,
    parse_window,
    report_files,
)
from opsline.monitoring.reference import NoReferenceError, read_reference

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from prometheus_client import CollectorRegistry

    from opsline.monitoring.prediction_log import PredictionLog
    from opsline.recipes.base import Recipe
    from opsline.serving.runtime import LoadedModel, ModelSlot
    from opsline.serving.settings import ServingSettings

log = logging.getLogger(__name__)

DriftListener = Callable[[DriftResult], None]


class DriftMonitor:
    """Periodic drift checks of the model in ``slot`` (see the module docstring).

    Attributes:
        latest: the last check's result (``None`` before the first).
        listeners: called after each check with its result, from the worker thread that
            computed it; a listener that raises is logged and the others still run.
    """

    def __init__(
        self,
        recipe: Recipe,
        settings: ServingSettings,
        slot: ModelSlot,
        registry: CollectorRegistry | None = None,
    ):
        self.recipe, self.settings, self.slot = recipe, settings, slot
        self.interval = float(settings.drift_interval_s)
        self.window = settings.drift_window
        self.min_rows = int(settings.drift_min_rows)
        self.drift_share: float | None = (
            settings.drift_share
            if settings.drift_share is not None
            else getattr(recipe, "drift_share", None)
        )
        self.latest: DriftResult | None = None
        self.listeners: list[DriftListener] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Future[DriftResult] | None = None
        self._log: PredictionLog | None = None
        # (model dir, version) -> its reference, or why it has none
        self._reference: tuple[tuple[str, str | None], Any] | None = None
        self._verdicts: dict[str, str] = {}  # run id -> last verdict logged to the run
        if registry is not None:
            from opsline.monitoring.drift_metrics import register_drift_metrics

            register_drift_metrics(registry, lambda: self.latest)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the periodic checks (none when the interval is 0: on demand only)."""
        self.loop = asyncio.get_running_loop()  # for checks asked from other threads (UI)
        if self.interval > 0:
            self._task = self.loop.create_task(self._poll(), name="drift-monitor")

    async def stop(self) -> None:
        import anyio.to_thread

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running is not None and not self._running.done():
            # A check in its thread cannot be cancelled: let it finish (it logs its errors).
            with contextlib.suppress(Exception):
                await self._running
        if self._log is not None:
            await anyio.to_thread.run_sync(self._log.close)
            self._log = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_now()
            except Exception:  # the poller must survive anything a check throws
                log.exception("Drift check failed")

    # -- checks -------------------------------------------------------------------------
    async def check_now(self) -> DriftResult:
        """Check now in a worker thread (or join the check already running)."""
        import anyio.to_thread

        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(anyio.to_thread.run_sync(self.run_check))
        # Shielded: a client hanging up must not cancel a check other callers wait for.
        return await asyncio.shield(self._running)

    async def latest_or_check(self) -> DriftResult:
        """The latest result, checking first if there is none yet."""
        return self.latest if self.latest is not None else await self.check_now()

    def run_check(self) -> DriftResult:
        """One check, published (blocking: call from a worker thread)."""
        result = self.compute()
        self.latest = result
        self._log_report(result)
        for listener in list(self.listeners):
            try:
                listener(result)
            except Exception:
                log.exception("Drift listener %r failed", listener)
        if result.status == ERROR:
            log.warning("Drift check: %s", result.message)
        return result

    def compute(self) -> DriftResult:
        """The drift of the served model's window (blocking; never raises)."""
        model = self.slot.model
        window = describe_window(self.window)
        if model is None:
            return DriftResult(
                status=NO_MODEL,
                min_rows=self.min_rows,
                window=window,
                message=f"no model is served: {self.slot.error or 'none loaded'}",
            )
        fields: dict[str, Any] = {"window": window, "model": model.name, "version": model.version}
        if not self.settings.prediction_log:
            return DriftResult(
                status=ERROR,
                min_rows=self.min_rows,
                **fields,
                message="the prediction log is off (OPSLINE_PREDICTION_LOG="
                "false): there are no logged requests to compare",
            )
        try:
            reference = self._reference_of(model)
            last, since = parse_window(self.window)
            current = self._prediction_log().features(model.name, last=last, since=since)
            return compute_drift(
                reference,
                current,
                min_rows=self.min_rows,
                drift_share=self.drift_share,
                html=True,
                **fields,
            )
        except NoReferenceError as error:
            return DriftResult(
                status=NO_REFERENCE, min_rows=self.min_rows, message=str(error), **fields
            )
        except Exception as error:  # a failing store or report: say so, keep serving
            log.warning("Drift check failed", exc_info=True)
            return DriftResult(
                status=ERROR,
                min_rows=self.min_rows,
                **fields,
                message=f"the drift check failed ({type(error).__name__}: "
                f"{error}); see the server log",
            )

    def _reference_of(self, model: LoadedModel) -> pd.DataFrame:
        key = (str(model.model_dir), model.version)
        if self._reference is None or self._reference[0] != key:  # first, or hot-reloaded
            try:
                value: Any = read_reference(model.model_dir, model.version)
            except NoReferenceError as error:
                value = error
            self._reference = (key, value)
        value = self._reference[1]
        if isinstance(value, NoReferenceError):
            raise value
        reference: pd.DataFrame = value
        return reference

    def _prediction_log(self) -> PredictionLog:
        if self._log is None:
            from opsline.monitoring.prediction_log import PredictionLog

            self._log = PredictionLog.open(self.settings.prediction_log_uri)
        return self._log

    def _log_report(self, result: DriftResult) -> None:
        """Log the reports to the served version's run when its verdict changed."""
        model = self.slot.model
        run_id = model.run_id if model is not None else None
        if not result.verdict or run_id is None or self._verdicts.get(run_id) == result.status:
            return
        try:
            from opsline.tracking.runs import log_texts_to_run

            files = report_files(result)
            log_texts_to_run(run_id, files, REPORT_DIR, uri=self.settings.tracking_uri)
        except Exception:  # the tracking store being down must not stop monitoring
            log.warning("Could not log the drift report to run %s", run_id, exc_info=True)
            return
        self._verdicts[run_id] = result.status
        html = [name for name in files if name.endswith(".html")]
        result.logged_to = f"runs:/{run_id}/{REPORT_DIR}/{html[0] if html else ''}"
        log.info(
            "Drift verdict %s for %s version %s; reports logged to run %s",
            result.status,
            result.model,
            result.version,
            run_id,
        )

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` shows under ``monitoring.drift``."""
        latest = self.latest
        return {
            "interval_s": self.interval,
            "window": describe_window(self.window),
            "min_rows": self.min_rows,
            "drift_share": "auto" if self.drift_share is None else self.drift_share,
            "status": latest.status if latest else None,
            "message": latest.message if latest else "no drift check yet",
            "checked_at": latest.summary()["checked_at"] if latest else None,
        }
