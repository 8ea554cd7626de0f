"""``opsline data prepare|validate``: the processed dataset and its checks."""

from __future__ import annotations

from typing import Annotated

import typer

from opsline.cli.options import Overrides, Recipe

data_app = typer.Typer(help="Prepare and validate datasets.", no_args_is_help=True)


@data_app.command("prepare")
def data_prepare(recipe: Recipe, overrides: Overrides = None) -> None:
    """Raw data → processed Parquet splits + manifest (the data version)."""
    from opsline import pipeline

    dataset = pipeline.prepare(recipe, overrides or [])
    rows = ", ".join(f"{s}={dataset.manifest['splits'][s]['rows']}" for s in dataset.splits)
    typer.echo(f"Prepared {recipe} data version {dataset.version} ({rows}) at {dataset.root}")


@data_app.command("validate")
def data_validate(
    recipe: Recipe,
    overrides: Overrides = None,
    report_file: Annotated[
        str | None,
        typer.Option("--report-file", help="Also write the result as JSON to this file."),
    ] = None,
) -> None:
    """Check the prepared dataset; exits 1 with a report naming columns and rows."""
    from opsline import pipeline

    result = pipeline.validate(recipe, overrides or [])
    typer.echo(result.report())
    if report_file:
        from opsline.outputs import validation_record, write_json

        write_json(report_file, validation_record(result))
    if not result.ok:
        raise typer.Exit(1)
