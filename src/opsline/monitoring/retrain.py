"""Start the loop's retrain job and leave its record: shared by the server and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsline.jobs.actions import RUNNING, Action, ActionLog

if TYPE_CHECKING:  # pragma: no cover
    from opsline.jobs.manager import JobManager
    from opsline.monitoring.policy import Decision, Policy


def start_retrain(
    manager: JobManager,
    recipe: str,
    model: str,
    policy: Policy,
    decision: Decision,
    old_version: str | None,
) -> Action:
    """Record the action, then start a ``retrain`` job (prepare with feedback → train →
    gate); the job's worker writes the outcome into the same record.

    Raises:
        JobLimitError: another job holds the workspace's job slots.
    """
    actions = ActionLog(manager.root)
    action = actions.add(
        recipe,
        model,
        decision.trigger or "manual",
        "retrain",
        RUNNING,
        decision.evidence,
        reason=decision.reason,
        old_version=old_version,
    )
    try:
        job = manager.start("retrain", recipe, policy.train_overrides)
    except Exception as error:
        actions.finish(action.id, "failed", f"the retrain job could not start: {error}")
        raise
    actions.set_job(action.id, job.id)
    action.job_id = job.id
    return action
