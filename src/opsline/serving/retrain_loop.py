"""The server's retrain loop: drift checks and live quality → policy → retrain job →
gate → hot reload, with every action recorded.

It listens to the :class:`~opsline.serving.drift_monitor.DriftMonitor` (one tick per drift
check). Each tick refreshes the live quality, applies :func:`opsline.monitoring.policy.
decide` and, when it says so, starts a ``retrain`` job through the app's job manager (a
separate process: serving is never blocked by training). A watcher polls the job; when it
ends, the action record holds the gate's outcome (written by the worker), a promoted
version is hot-reloaded at once (the reloader's smoke test still applies), and failures
count toward stopping the loop. ``GET /model`` shows the policy, the state and the last
actions under ``monitoring.loop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from opsline.jobs.actions import FAILED, PROMOTED, ActionLog
from opsline.jobs.settle import settle
from opsline.monitoring import policy as rules

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from opsline.monitoring.drift import DriftResult
    from opsline.recipes.base import Recipe

log = logging.getLogger(__name__)

JOB_POLL_S = 1.0


class RetrainLoop:
    """Follow the policy for the app's served model (see the module docstring)."""

    def __init__(self, app: FastAPI, recipe: Recipe, policy: rules.Policy):
        self.app = app
        self.recipe = recipe
        self.policy = policy
        self.state = rules.LoopState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy = asyncio.Lock()

    @property
    def actions(self) -> ActionLog:
        return ActionLog(self.app.state.jobs.root)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe to the drift monitor and resume a retrain a previous server started."""
        self._loop = asyncio.get_running_loop()
        self.app.state.drift.listeners.append(self._on_drift)
        model = self.app.state.model.model
        if model is not None:
            self.state = rules.LoopState.from_actions(self.actions.recent(model.name))
            if self.state.running_job:
                self._spawn(self._watch(self.state.running_job))

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.app.state.drift.listeners.remove(self._on_drift)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_drift(self, result: DriftResult) -> None:
        # Called from the drift monitor's worker thread: hand over to the event loop.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self._spawn(self.tick(result)))

    # -- one tick -------------------------------------------------------------------------
    async def tick(self, drift: DriftResult | None) -> rules.Decision:
        """Apply the policy to this drift check and the live quality; act on it."""
        async with self._busy:  # ticks never overlap: one decision at a time
            model = self.app.state.model.model
            if model is None:
                decision = rules.Decision(False, "no model is served")
                self.state.last_decision = decision.reason
                return decision
            if drift is not None and drift.model in (None, model.name):
                rules.observe_drift(self.state, drift.status)
            quality = await self.app.state.refresh_quality()
            decision = rules.decide(
                self.policy,
                self.state,
                drift=None
                if drift is None
                else {
                    "status": drift.status,
                    "share": drift.share,
                    "rows": drift.rows,
                    "features": drift.drifted_features,
                },
                quality=quality.metrics,
                quality_rows=quality.rows,
            )
            self.state.last_decision = decision.reason
            if decision.retrain:
                await self._retrain(decision, model.name, model.version)
            return decision

    async def _retrain(self, decision: rules.Decision, model: str, version: str | None) -> None:
        from opsline.monitoring.retrain import start_retrain

        try:
            action = await anyio.to_thread.run_sync(
                start_retrain,
                self.app.state.jobs,
                self.recipe.name,
                model,
                self.policy,
                decision,
                version,
            )
        except Exception as error:  # noqa: BLE001 (e.g. a user's job holds the slot: next tick)
            self.state.last_decision = f"could not start a retrain: {error}"
            log.warning("Retrain not started: %s", error)
            return
        log.info("Retrain started (job %s): %s", action.job_id, decision.reason)
        self.state.running_job = action.job_id
        self.state.last_started = time.time()
        self.state.drift_streak = 0  # the next retrain needs fresh evidence
        assert action.job_id is not None
        self._spawn(self._watch(action.job_id))

    async def _watch(self, job_id: str) -> None:
        """Wait for the job; then reload a promoted version, or count the failure."""
        manager = self.app.state.jobs
        while True:
            job = await anyio.to_thread.run_sync(manager.get, job_id)
            if job.finished:
                break
            await asyncio.sleep(JOB_POLL_S)
        # Closes the record if the worker died first (a promotion is read from the registry).
        action = await anyio.to_thread.run_sync(settle, self.actions, job)
        failed = action.outcome == FAILED if action is not None else job.status != "succeeded"
        reason = (action.result if action is not None else "") or job.error or job.message
        rules.job_finished(self.policy, self.state, failed, reason)
        if action is not None and action.outcome == PROMOTED:
            attempt = await self.app.state.reloader.reload("retrain")
            await self.app.state.refresh_quality()  # the new version's own (empty) figures
            log.info(
                "Retrain job %s promoted version %s; reload: %s (%s)",
                job_id,
                action.new_version,
                attempt.outcome,
                attempt.reason,
            )

    # -- GET /model ------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        model = self.app.state.model.model
        recent = self.actions.recent(model.name if model else None, limit=5)
        return {
            "policy": self.policy.describe(),
            "state": self.state.describe(),
            "actions": [a.to_dict() for a in recent],
        }
