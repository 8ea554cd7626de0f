"""``opsline monitor watch``: the retrain loop without a server.

The same rules as the server's loop (:mod:`opsline.serving.retrain_loop`), for a workspace
whose server runs elsewhere (another process, several replicas sharing a PostgreSQL
prediction log, or none at all): each check measures drift of the logged requests against
the production model's reference and the live quality from feedback, then asks
:func:`opsline.monitoring.policy.decide`. A retrain is started through the workspace's job
system (the same ``retrain`` job the server starts, recorded in the same action log, so the
server's ``GET /model`` lists it too); a promoted version reaches running servers through
their alias poller (``OPSLINE_RELOAD_INTERVAL_S``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsline.jobs.actions import FAILED, ActionLog
from opsline.jobs.settle import settle
from opsline.monitoring import policy as rules

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.jobs.actions import Action
    from opsline.jobs.manager import JobManager
    from opsline.monitoring.drift import DriftResult
    from opsline.monitoring.live_quality import LiveQuality
    from opsline.recipes.base import Recipe
    from opsline.tracking.registry import ModelRef

JOB_POLL_S = 2.0


def logged_drift(
    ref: ModelRef, window: str, *, min_rows: int, drift_share: float | None, html: bool = False
) -> DriftResult:
    """Drift of the logged requests of ``ref``'s model against its reference.

    Raises:
        NoReferenceError: the version was registered without a reference.
    """
    from opsline.monitoring.drift import compute_drift, describe_window, parse_window
    from opsline.monitoring.reference import read_reference

    last, since = parse_window(window)
    reference = read_reference(ref.local_dir, ref.version)
    current = logged_features(ref.name, last, since)
    return compute_drift(
        reference,
        current,
        min_rows=min_rows,
        drift_share=drift_share,
        html=html,
        window=describe_window(window),
        model=ref.name,
        version=ref.version,
    )


def logged_features(model: str, last: int | None, since: float | None) -> pd.DataFrame:
    """The monitored features of ``model``'s logged requests in the window."""
    from opsline.monitoring.prediction_log import PredictionLog

    log = PredictionLog.open()
    try:
        return log.features(model, last=last, since=since)
    finally:
        log.close()


def logged_quality(recipe: Recipe, model: str, version: str | None, window: int) -> LiveQuality:
    from opsline.monitoring import live_quality
    from opsline.monitoring.prediction_log import PredictionLog

    log = PredictionLog.open()
    try:
        return live_quality.compute(recipe, log, model, window, version)
    finally:
        log.close()


@dataclass
class Check:
    """One check of the watch: what was measured and what the policy said."""

    model: str
    version: str | None
    drift: DriftResult | None
    drift_note: str
    quality: LiveQuality
    decision: rules.Decision
    action: Action | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        version = f" v{self.version}" if self.version else ""
        quality = (
            ", ".join(f"{k} {v:.4g}" for k, v in self.quality.metrics.items())
            + f" on {self.quality.rows} labelled predictions"
            if self.quality.metrics
            else "no feedback yet"
        )
        return [
            f"{self.model}{version}: drift: {self.drift_note}; live quality: {quality}",
            (
                f"  decision: {'RETRAIN' if self.decision.retrain else 'wait'} — "
                f"{self.decision.reason}"
            ),
            *(f"  {n}" for n in self.notes),
        ]


class Watch:
    """Check, decide and (unless ``dry_run``) act, for one recipe's production model."""

    def __init__(
        self,
        recipe: Recipe,
        policy: rules.Policy,
        manager: JobManager,
        *,
        model_name: str,
        tracking_uri: str | None,
        window: str = "1000",
        min_rows: int = 100,
        drift_share: float | None = None,
        quality_window: int = 1000,
        dry_run: bool = False,
    ):
        self.recipe, self.policy, self.manager = recipe, policy, manager
        self.model_name, self.tracking_uri = model_name, tracking_uri
        self.window, self.min_rows, self.drift_share = window, min_rows, drift_share
        self.quality_window, self.dry_run = quality_window, dry_run
        self.actions = ActionLog(manager.root)
        # Cooldown, a retrain still running and consecutive failures survive a restart.
        self.state = rules.LoopState.from_actions(self.actions.recent(model_name))

    def check(self) -> Check:
        """Measure drift and quality of the production model; decide; start a retrain if
        the policy says so (not in a dry run)."""
        from opsline.monitoring.reference import NoReferenceError
        from opsline.tracking.registry import resolve_model

        self._follow_running_job()
        ref = resolve_model(
            self.recipe.name, f"models:/{self.model_name}@production", self.tracking_uri
        )
        drift: DriftResult | None = None
        try:
            drift = logged_drift(
                ref, self.window, min_rows=self.min_rows, drift_share=self.drift_share
            )
            rules.observe_drift(self.state, drift.status)
            note = (
                f"{'DRIFT' if drift.detected else 'none'} ({drift.share:.0%} of "
                f"features, {drift.rows} requests)"
                if drift.verdict
                else drift.message
            )
        except NoReferenceError as error:
            note = str(error)
        quality = logged_quality(self.recipe, ref.name, ref.version, self.quality_window)
        summary = (
            None
            if drift is None
            else {
                "status": drift.status,
                "share": drift.share,
                "rows": drift.rows,
                "features": drift.drifted_features,
            }
        )
        decision = rules.decide(
            self.policy,
            self.state,
            drift=summary,
            quality=quality.metrics,
            quality_rows=quality.rows,
        )
        self.state.last_decision = decision.reason
        check = Check(ref.name, ref.version, drift, note, quality, decision)
        if decision.retrain:
            if self.dry_run:
                check.notes.append(
                    "dry run: would start a retrain job "
                    f"({' '.join(self.policy.train_overrides) or 'no overrides'}"
                    ", feedback rows included) and let the gate decide"
                )
            else:
                check.action = self._start(decision, ref.name, ref.version)
                check.notes.append(f"retrain job {check.action.job_id} started")
        return check

    def _start(self, decision: rules.Decision, model: str, version: str | None) -> Action:
        from opsline.monitoring.retrain import start_retrain

        action = start_retrain(
            self.manager, self.recipe.name, model, self.policy, decision, version
        )
        self.state.running_job = action.job_id
        self.state.last_started = time.time()
        self.state.drift_streak = 0
        return action

    def wait(self, job_id: str, poll_s: float = JOB_POLL_S) -> Action | None:
        """Block until the retrain job ends; update the loop state; its action record."""
        while not (job := self.manager.get(job_id)).finished:
            time.sleep(poll_s)
        action = settle(self.actions, job)  # closes the record if the worker died first
        reason = (action.result if action is not None else "") or job.error or job.message
        # A worker that died after the gate promoted its version did not fail the retrain.
        failed = action.outcome == FAILED if action is not None else job.status != "succeeded"
        rules.job_finished(self.policy, self.state, failed, reason)
        return action

    def _follow_running_job(self) -> None:
        """A retrain started by an earlier watch (or a server) that has ended since."""
        job_id = self.state.running_job
        if job_id is not None and self.manager.get(job_id).finished:
            self.wait(job_id)


def describe_action(action: Action | None) -> str:
    if action is None:
        return "the retrain ended without a record"
    change = f" (v{action.old_version} → v{action.new_version})" if action.new_version else ""
    return f"retrain job {action.job_id}: {action.outcome}{change}: {action.result}"


def summary(check: Check) -> dict[str, Any]:
    """``--json`` output of one check."""
    return {
        "model": check.model,
        "version": check.version,
        "drift": None if check.drift is None else check.drift.summary(),
        "drift_note": check.drift_note,
        "quality": check.quality.describe(),
        "decision": {
            "retrain": check.decision.retrain,
            "reason": check.decision.reason,
            "trigger": check.decision.trigger,
        },
        "action": None if check.action is None else check.action.to_dict(),
    }
