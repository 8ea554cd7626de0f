"""Arguments and options shared by the commands, and how commands talk to the user."""

from __future__ import annotations

from typing import Annotated

import typer

Recipe = Annotated[str, typer.Argument(help="Recipe name (see `opsline recipes`).")]
Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides, e.g. experiment=high_lr model=gbm trainer.max_epochs=3."),
]
ModelUri = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a folder. "
        "Default: models:/RECIPE@production.",
    ),
]
Host = Annotated[str | None, typer.Option(envvar="HOST", help="Bind address.")]
# Files a pipeline tool (DVC, see `opsline dvc init`) can track as a stage's outputs.
MetricsFile = Annotated[
    str | None, typer.Option("--metrics-file", help="Also write the metrics as JSON to this file.")
]
Port = Annotated[int | None, typer.Option(envvar="PORT", help="Port.")]


def say(message: str) -> None:
    """Progress for a person, on stderr (stdout stays the command's result)."""
    typer.echo(message, err=True)


def print_metrics(metrics: dict[str, float]) -> None:
    """Metrics as an aligned two-column list, sorted by name."""
    for key in sorted(metrics):
        typer.echo(f"  {key:<24} {metrics[key]:.4f}")
