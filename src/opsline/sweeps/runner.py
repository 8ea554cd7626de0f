"""``run_sweep``: validate, open (or resume) the study and its parent run, run the trials,
summarise, and optionally register the best trial.

``--register-best`` registers the best trial's own model (its run logged the exported model
files; trials just don't create versions): the version is exactly the model that was
measured, with the trial's val/test metrics, and nothing is retrained. Promotion stays a
separate, gated step (``opsline promote``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opsline.config import load_config
from opsline.errors import NoModelError, UsageError
from opsline.recipes.registry import get_recipe
from opsline.sweeps import study as studies
from opsline.sweeps import summary
from opsline.sweeps.objective import PARENT_ATTR
from opsline.sweeps.space import load_spec
from opsline.workspace import data_dir


def run_sweep(
    recipe_name: str,
    trials: int,
    overrides: Sequence[str] = (),
    *,
    parallel: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    register_best: bool = False,
    max_failures: int | None = None,
    say: studies.Say = studies._stderr,
) -> studies.SweepResult:
    """Run (or resume) the sweep until the study holds ``trials`` finished trials.

    Raises:
        UsageError: bad arguments, an invalid search space (naming the key), a storage
            that cannot be opened, or a study created with another direction.
        OpslineError: e.g. no prepared dataset, or too many failed trials in a row.
    """
    import optuna

    from opsline.data.dataset import load_dataset
    from opsline.tracking.runs import resume_run, run_exists, start_run

    if trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}.")
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {parallel}.")
    overrides = list(overrides)
    cfg = load_config(recipe_name, overrides)
    recipe = get_recipe(recipe_name)
    spec = load_spec(cfg, recipe_name, recipe.greater_is_better, overrides)
    load_dataset(data_dir(recipe_name), recipe_name)  # fail before any trial if unprepared
    name = study_name or f"{recipe_name}-sweep"
    url = studies.storage_url(storage)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        storage=studies.open_storage(url),
        study_name=name,
        direction=spec.direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != spec.direction:
        raise UsageError(
            f"Study {name!r} was created to {study.direction.name.lower()}, "
            f"not {spec.direction}; use another --study name."
        )
    space_json = json.dumps({k: repr(v) for k, v in spec.space.items()}, sort_keys=True)
    previous_space = study.user_attrs.get("space")
    if previous_space and previous_space != space_json:
        say(
            f"Warning: the search space changed since study {name!r} started; "
            "finished trials keep their old values."
        )
    experiment = cfg.tracking.experiment or recipe_name
    studies.fail_dead_trials(study, experiment, cfg.tracking.uri, say)
    done, _ = studies._counts(study)
    say(f"Study {name!r} in {studies.redact(url)}: {done} of {trials} trials finished.")

    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id and run_exists(parent_id, cfg.tracking.uri):
        parent_context = resume_run(parent_id, cfg.tracking.uri)
    else:
        parent_context = start_run(
            experiment,
            run_name=name,
            uri=cfg.tracking.uri,
            tags={
                "sweep.role": "parent",
                "optuna.study": name,
                "recipe": recipe_name,
                "overrides": " ".join(overrides) or "(none)",
            },
        )
    with parent_context as parent:
        study.set_user_attr(PARENT_ATTR, parent.run_id)
        study.set_user_attr("space", space_json)
        parent.set_tags(
            {
                "sweep.storage": studies.redact(url),
                "sweep.metric": spec.metric,
                "sweep.direction": spec.direction,
            }
        )
        parent.log_dict({k: vars(v) for k, v in spec.space.items()}, "sweep/space.json")
        studies.run_workers(
            parallel,
            recipe=recipe_name,
            overrides=overrides,
            spec=spec,
            url=url,
            study_name=name,
            parent_run_id=parent.run_id,
            target=trials,
            max_failures=max_failures or max(trials, 3),
            seed=int(cfg.get("seed", 42)) + len(study.trials),
            say=say,
        )
        rows = summary.trial_rows(study)
        table = summary.format_table(rows, spec.metric)
        values, note = summary.importances(study)
        summary.log_to_parent(parent, study, spec, rows, table, values, note)
        result = studies.SweepResult(
            name,
            studies.redact(url),
            parent.run_id,
            spec.metric,
            spec.direction,
            rows,
            None,
            table,
            values,
            note,
        )
        best = _best(study)
        if best is not None:
            result.best = {
                "trial": best.number,
                "value": best.value,
                "params": dict(best.params),
                "run_id": best.user_attrs.get("run_id"),
            }
        if register_best:
            if best is None:
                raise NoModelError(f"Study {name!r} has no complete trial to register.")
            result.registered_version = _register(recipe_name, name, best, cfg.tracking.uri)
            parent.set_tags({"sweep.registered_version": result.registered_version})
    return result


def _best(study: Any) -> Any | None:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def _register(recipe_name: str, study_name: str, best: Any, uri: str | None) -> str:
    """Register the best trial's logged model as a new version (no retraining)."""
    from opsline.tracking import registry
    from opsline.tracking.runs import RunHandle, client

    attrs = best.user_attrs
    if not attrs.get("run_id") or not attrs.get("model_uri"):
        raise NoModelError(f"Trial {best.number} of {study_name!r} recorded no model to register.")
    tags = {
        **attrs.get("tags", {}),
        "sweep.study": study_name,
        "sweep.trial": best.number,
        "sweep.params": json.dumps(best.params, sort_keys=True),
    }
    version = registry.register(
        recipe_name,
        attrs["run_id"],
        attrs["model_uri"],
        tags=tags,
        metrics=attrs.get("metrics", {}),
        uri=uri,
    )
    RunHandle(client(uri), attrs["run_id"]).set_tags(
        {"registered_model": recipe_name, "registered_version": version}
    )
    return version
