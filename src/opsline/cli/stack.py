"""``opsline stack up|down|status``: PostgreSQL + S3 (SeaweedFS) + MLflow on this machine.

``up`` starts what is not running (idempotent) and prints the environment to export;
``status`` says what runs where; ``down`` stops every server it started. Ports, data
directory and credentials: ``configs/stack.yaml`` (``--config`` / ``$OPSLINE_STACK_CONFIG``).
The stack package is imported inside the commands so ``opsline --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

stack_app = typer.Typer(
    help="Run PostgreSQL, S3 and an MLflow server on this machine.", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="Stack config (default: $OPSLINE_STACK_CONFIG or configs/stack.yaml)."
    ),
]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Data, logs and pids (default: the config's dir, or $OPSLINE_HOME/stack)."
    ),
]


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _print_status(settings) -> bool:
    from opsline.stack.manager import env_lines, status

    rows = status(settings)
    for row in rows:
        pid = f"pid {row.pid}" if row.pid else "-"
        typer.echo(f"{row.name:<24} {row.state:<24} {row.uri:<32} {pid:<10} log {row.log}")
    typer.echo(f"# data: {settings.dir}\n# to use it from this shell:")
    for line in env_lines(settings):
        typer.echo(line)
    typer.echo(
        f"# sweeps: opsline sweep RECIPE --storage {settings.pg_uri(settings.opsline_db)} ..."
    )
    return all(row.healthy for row in rows)


@stack_app.command()
def up(config: ConfigOpt = None, stack_dir: DirOpt = None) -> None:
    """Start PostgreSQL, the S3 server and MLflow (what is not running yet)."""
    from opsline.stack.manager import up as start_stack
    from opsline.stack.settings import load_settings

    settings = load_settings(config, stack_dir)
    if not start_stack(settings, _say):
        _say(f"The stack is already running ({settings.dir}).")
    _print_status(settings)


@stack_app.command()
def down(config: ConfigOpt = None, stack_dir: DirOpt = None) -> None:
    """Stop every server of the stack (data is kept)."""
    from opsline.stack.manager import down as stop_stack
    from opsline.stack.settings import load_settings

    settings = load_settings(config, stack_dir)
    stopped = stop_stack(settings)
    typer.echo(f"Stopped {', '.join(stopped)}." if stopped else "Nothing of the stack was running.")


@stack_app.command()
def status(config: ConfigOpt = None, stack_dir: DirOpt = None) -> None:
    """What runs where (URIs, pids, health) and the environment to export; exit 1 if not all
    healthy."""
    from opsline.stack.settings import load_settings

    if not _print_status(load_settings(config, stack_dir)):
        _say(
            "Not every server is healthy: `opsline stack up` starts the stopped ones; the "
            "logs are listed above."
        )
        raise typer.Exit(1)
