"""Close the loop's record of a retrain job whose worker died before closing it.

The retrain worker registers a version, notes it in the action record
(:meth:`ActionLog.note_candidate`), lets the gate move the ``production`` alias, and only
then closes the record. Two stores (the MLflow registry, ``jobs.db``) cannot change in one
transaction, so a worker killed between the promotion and the close leaves the alias moved
and the record ``running``. Whoever sees the job end (the server's retrain loop, ``opsline
monitor watch``, a restarted server following the job) calls :func:`settle`: the registry is
the truth about what serves, so the record says ``promoted`` when the alias names the noted
candidate, and ``failed`` otherwise.
"""

from __future__ import annotations

import logging

from opsline.jobs.actions import FAILED, PROMOTED, RUNNING, Action, ActionLog
from opsline.jobs.store import Job

log = logging.getLogger("opsline.jobs")


def settle(actions: ActionLog, job: Job) -> Action | None:
    """The action record of ``job`` (which has ended), closed if its worker did not close it.

    Returns ``None`` when the job belongs to no action (a ``/jobs`` train job).
    """
    action = actions.for_job(job.id)
    if action is None or action.outcome != RUNNING:
        return action
    why = job.error or f"the job ended {job.status}"
    serving = production_version(action) if action.new_version else None
    if serving is not None and serving == action.new_version:
        log.warning(
            "Retrain job %s ended (%s) after the gate promoted version %s; recording the "
            "promotion from the registry",
            job.id,
            why,
            serving,
        )
        actions.finish(
            action.id,
            PROMOTED,
            f"the gate promoted version {serving} (the registry's alias says so); the worker "
            f"then ended before closing this record: {why}",
            new_version=serving,
        )
    else:
        registered = (
            f" (version {action.new_version} was registered, not promoted)"
            if action.new_version
            else ""
        )
        actions.finish(action.id, FAILED, why + registered)
    return actions.for_job(job.id)


def production_version(action: Action) -> str | None:
    """The version the promotion alias of the action's model names now; ``None`` when
    there is none or the registry cannot be read (then nothing is claimed)."""
    from opsline.config import load_config
    from opsline.errors import OpslineError
    from opsline.tracking.registry import current_version

    try:
        cfg = load_config(action.recipe, [])
        return current_version(f"models:/{action.model}@{cfg.promotion.alias}", cfg.tracking.uri)
    except OpslineError as error:
        log.warning("Cannot read the registry to settle action %s: %s", action.id, error)
        return None
