"""One trial: ``pipeline.train`` with sampled overrides, as an MLflow child run.

Pruning: ``pipeline.train(on_epoch=...)`` hands every per-epoch metric batch (what the
Lightning ``RunMetricsCallback`` logs with ``step=epoch``) to :class:`PruningHook`, which
reports ``sweep.prune_on`` (``val_loss``) to ``trial.report(value, step)``. When the pruner
says stop, the hook raises :class:`TrialStopped` from inside the epoch callback; Lightning
re-raises it out of ``fit``, the tracking layer ends the child run as KILLED (not FAILED),
and the objective turns it into ``optuna.TrialPruned``. Recipes need not know sweeps exist.

Trials never register a model version: they log their model files (``register=False``) and
record run id, model URI, lineage tags and metrics as trial user attributes, which is all
``--register-best`` needs to register the best trial's very model later.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from opsline.errors import UsageError
from opsline.sweeps.space import SweepSpec, to_overrides
from opsline.tracking.runs import RunStopped

#: Study user attribute holding the sweep's parent MLflow run id (reused on resume).
PARENT_ATTR = "mlflow_parent_run_id"
#: Trial user attribute "<host>:<pid>" of the process running it (to detect dead workers).
WORKER_ATTR = "worker"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialStopped(RunStopped):
    """Raised by :class:`PruningHook` when the pruner stops a trial."""


class PruningHook:
    """``on_epoch(step, metrics)`` for ``pipeline.train``: report and maybe prune."""

    def __init__(self, trial: Any, key: str):
        self.trial = trial
        self.key = key

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        if self.key not in metrics:
            return
        value = float(metrics[self.key])
        self.trial.report(value, int(step))
        if self.trial.should_prune():
            raise TrialStopped(f"pruned by the sweep at step {step}: {self.key}={value:.5g}")


class Objective:
    """Callable ``optuna`` objective for one recipe's sweep.

    Args:
        recipe: recipe name.
        overrides: user overrides applied to every trial (e.g. ``trainer=debug``).
        spec: the validated sweep spec (space, metric, pruning metric).
        parent_run_id: the sweep's MLflow run; every trial is a child of it.
        study_name: tagged on each child run.
        say: progress messages.
    """

    def __init__(
        self,
        recipe: str,
        overrides: Sequence[str],
        spec: SweepSpec,
        parent_run_id: str,
        study_name: str,
        say: Callable[[str], None],
    ):
        self.recipe = recipe
        self.overrides = list(overrides)
        self.spec = spec
        self.parent_run_id = parent_run_id
        self.study_name = study_name
        self.say = say
        self.last_number: int | None = None

    def __call__(self, trial: Any) -> float:
        import optuna

        from opsline import pipeline

        self.last_number = trial.number
        trial.set_user_attr(WORKER_ATTR, worker_id())
        values = {key: param.suggest(trial) for key, param in self.spec.space.items()}
        overrides = [*self.overrides, *to_overrides(values)]
        tags = {
            "optuna.study": self.study_name,
            "optuna.trial_number": str(trial.number),
            "sweep.role": "trial",
        }
        self.say(f"Trial {trial.number}: {' '.join(to_overrides(values))}")
        try:
            result = pipeline.train(
                self.recipe,
                overrides,
                on_epoch=PruningHook(trial, self.spec.prune_on),
                parent_run_id=self.parent_run_id,
                register=False,
                tags=tags,
            )
        except TrialStopped as stop:
            raise optuna.TrialPruned(str(stop)) from None
        except Exception as error:
            # Recorded while the trial is still RUNNING (a finished trial is read-only).
            text = str(error).strip().splitlines()
            trial.set_user_attr("error", f"{type(error).__name__}: {text[0] if text else ''}")
            raise
        if self.spec.metric not in result.metrics:
            raise UsageError(
                f"sweep.metric {self.spec.metric!r} is not among the metrics "
                f"training reports: {', '.join(sorted(result.metrics))}."
            )
        trial.set_user_attr("run_id", result.run_id)
        trial.set_user_attr("model_uri", result.model_uri)
        trial.set_user_attr("tags", result.tags)
        trial.set_user_attr("metrics", result.metrics)
        return float(result.metrics[self.spec.metric])
