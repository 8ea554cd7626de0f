"""Train, evaluate, promote and list model versions: the registry side of the lifecycle."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from opsline.cli.options import MetricsFile, ModelUri, Overrides, Recipe, print_metrics, say
from opsline.errors import UsageError


def recipes() -> None:
    """List the registered recipes."""
    from opsline.recipes.registry import get_recipe, list_recipes

    for name in list_recipes():
        typer.echo(f"{name}\t{get_recipe(name).description}")


def train(
    recipe: Recipe,
    overrides: Overrides = None,
    metrics_file: MetricsFile = None,
    model_dir: Annotated[
        str | None,
        typer.Option(
            "--model-dir",
            help="Also copy the trained model folder here "
            "(`opsline evaluate --model DIR` loads it).",
        ),
    ] = None,
) -> None:
    """Validate, train, evaluate, track in MLflow and register a model version."""
    from opsline import pipeline

    result = pipeline.train(recipe, overrides or [], say=say)
    print_metrics(result.metrics)
    if metrics_file:
        from opsline.outputs import write_json

        write_json(metrics_file, result.metrics)
    if model_dir:
        from opsline.config import load_config
        from opsline.outputs import copy_model

        copy_model(
            recipe, result.run_id, load_config(recipe, overrides or []).tracking.uri, model_dir
        )


def evaluate(
    recipe: Recipe,
    model: ModelUri = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    split: Annotated[str, typer.Option(help="Dataset split.")] = "test",
    overrides: Overrides = None,
    metrics_file: MetricsFile = None,
) -> None:
    """Task metrics of a model (default: the production one) on the test split."""
    from opsline import pipeline

    metrics = pipeline.evaluate(recipe, model, overrides or [], split=split)
    if metrics_file:
        from opsline.outputs import write_json

        write_json(metrics_file, metrics)
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        print_metrics(metrics)


def promote(
    recipe: Recipe,
    version: Annotated[int | None, typer.Option("--version", help="Model version.")] = None,
    latest: Annotated[
        bool,
        typer.Option(
            "--latest",
            help="The newest registered version (what `dvc repro` or a CI job just trained).",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="Skip the quality gate.")] = False,
    overrides: Overrides = None,
) -> None:
    """Move the production alias to VERSION if it is at least as good as today's."""
    from opsline import pipeline

    if (version is None) == (not latest):
        raise UsageError("Give either --version N or --latest.")
    if latest:
        version = _latest_version(recipe, overrides or [])
    decision = pipeline.promote(recipe, str(version), force=force, overrides=overrides or [])
    typer.echo(
        f"{'Promoted' if decision.promoted else 'Not promoted'} "
        f"{recipe} version {decision.version}: {decision.reason}."
    )
    if not decision.promoted:
        raise typer.Exit(1)


def _latest_version(recipe: str, overrides: list[str]) -> int:
    from opsline.config import load_config
    from opsline.recipes.registry import get_recipe
    from opsline.tracking.registry import list_versions

    name = get_recipe(recipe).model_name(load_config(recipe, overrides))
    rows = list_versions(name)
    if not rows:
        raise UsageError(f"No registered version of {name!r} to promote; train one first.")
    return int(rows[0]["version"])


def models(recipe: Recipe, overrides: Overrides = None) -> None:
    """List registered versions with aliases and test metrics."""
    from opsline.config import load_config
    from opsline.recipes.registry import get_recipe
    from opsline.tracking.registry import list_versions

    key = f"test_{get_recipe(recipe).primary_metric}"
    # The registered name: the recipe's, or e.g. one per data source (data=grapevine).
    name = get_recipe(recipe).model_name(load_config(recipe, overrides or []))
    rows = list_versions(name)
    if not rows:
        given = " ".join(overrides or [])
        typer.echo(
            f"No versions of {name!r} yet: run `opsline run {recipe}"
            f"{' ' + given if given else ''}`."
        )
    for row in rows:
        value = row["metrics"].get(key)
        # e.g. onnx=passed: whether the version may serve its optimised backend (the gate).
        gates = ",".join(f"{b}={o}" for b, o in sorted(row["parity"].items())) or "native only"
        typer.echo(
            f"v{row['version']}\t{row['kind'] or '?'}\t{key}="
            f"{'n/a' if value is None else f'{value:.4f}'}\t{gates}\t"
            f"{','.join(row['aliases'])}"
        )
