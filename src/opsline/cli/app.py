"""The ``opsline`` Typer app: every command group assembled in one place, and the entry point.

Each command lives in its own module of :mod:`opsline.cli` and imports everything heavy inside
the command, so ``opsline --help`` stays fast. Expected failures (``OpslineError``) become one
sentence on stderr and the error's exit code; anything unexpected becomes one sentence plus a
log file with the traceback, never a traceback dump.
"""

from __future__ import annotations

import sys

import typer

from opsline.cli import data, loadtest, models, serve, sweep
from opsline.cli.dvc import dvc_app
from opsline.cli.monitor import monitor_app
from opsline.cli.predictions import predictions_app
from opsline.cli.stack import stack_app
from opsline.errors import OpslineError

app = typer.Typer(
    help="opsline: from raw data to a monitored ML service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The lifecycle in the order a user meets it (also the order `opsline --help` lists it).
for command in (
    models.recipes,
    models.train,
    models.evaluate,
    models.promote,
    models.models,
    serve.serve,
    serve.run,
    loadtest.loadtest,
    sweep.sweep,
):
    app.command()(command)
app.add_typer(data.data_app, name="data")
app.add_typer(monitor_app, name="monitor")  # drift, shadow comparison, the retrain watch
app.add_typer(predictions_app, name="predictions")  # export / prune the prediction log
app.add_typer(stack_app, name="stack")  # PostgreSQL + S3 + MLflow on this machine
app.add_typer(dvc_app, name="dvc")  # a DVC pipeline over these commands


def main() -> None:
    """Console entry point: user errors are one sentence, never a traceback."""
    try:
        app()
    except OpslineError as error:
        typer.echo(f"Error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 (the last line of defence for users)
        import traceback

        from opsline.workspace import home

        log = home() / "logs" / "last_error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        typer.echo(
            f"Unexpected error ({type(error).__name__}): {error}. Details in {log}.", err=True
        )
        sys.exit(1)
