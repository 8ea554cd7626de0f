"""``opsline sweep``: an Optuna study whose trials are MLflow child runs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from opsline.cli.options import Overrides, Recipe, say


def sweep(
    recipe: Recipe,
    trials: Annotated[int, typer.Option("--trials", help="Finished trials to reach.")],
    overrides: Overrides = None,
    parallel: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL (default: sqlite:///OPSLINE_HOME/sweeps.db), e.g. "
            "postgresql://user@host/db for workers on several machines."
        ),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default RECIPE-sweep); the same name resumes.")
    ] = None,
    register_best: Annotated[
        bool, typer.Option("--register-best", help="Register the best trial's model as a version.")
    ] = False,
    max_failures: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many failed trials in a row (default: max(3, --trials))."
        ),
    ] = None,
) -> None:
    """Hyperparameter sweep (Optuna), resumable; each trial an MLflow child run."""
    from opsline.sweeps.runner import run_sweep

    result = run_sweep(
        recipe,
        trials,
        overrides or [],
        parallel=parallel,
        storage=storage,
        study_name=study,
        register_best=register_best,
        max_failures=max_failures,
        say=say,
    )
    typer.echo(result.table)
    if result.importances:
        typer.echo(
            "importance: " + ", ".join(f"{k}={v:.2f}" for k, v in result.importances.items())
        )
    elif result.importance_note:
        typer.echo(result.importance_note)
    if result.best:
        typer.echo(
            f"best: trial {result.best['trial']} {result.metric}="
            f"{result.best['value']:.5g} {json.dumps(result.best['params'])} "
            f"(run {result.best['run_id']}, parent run {result.parent_run_id})"
        )
    if result.registered_version:
        typer.echo(
            f"Registered {recipe} version {result.registered_version} from trial "
            f"{result.best['trial']}; promote it with `opsline promote {recipe} "
            f"--version {result.registered_version}`."
        )
