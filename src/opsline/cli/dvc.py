"""``opsline dvc``: version data, models and metrics with DVC.

* ``opsline dvc init RECIPE [overrides ...] [--remote PATH|s3://bucket/prefix]
  [--endpoint-url URL] [--force]`` — in a git project: ``dvc init`` if needed (analytics
  off), a default remote (``.opsline/dvc-remote`` unless given), ``params.yaml`` from the
  composed config and a ``dvc.yaml`` whose stages run ``opsline data prepare``, ``data
  validate``, ``train`` and ``evaluate``. Then ``dvc repro``, ``dvc push``, ``dvc pull``.

Everything heavy (Hydra, the recipe, DVC itself) is imported or started inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

dvc_app = typer.Typer(help="Version data, models and metrics with DVC.", no_args_is_help=True)


@dvc_app.callback()
def _group() -> None:
    """Version data, models and metrics with DVC."""  # keeps `init` a sub-command


@dvc_app.command("init")
def init(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `opsline recipes`).")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Hydra overrides, e.g. model=gbm model.params.learning_rate=0.05."),
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(help="Local folder or s3://bucket/prefix (default .opsline/dvc-remote)."),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            help="S3 endpoint of a non-AWS server (SeaweedFS, MinIO), e.g. http://127.0.0.1:8333."
        ),
    ] = None,
    access_key_id: Annotated[
        str | None, typer.Option(help="S3 key, written to .dvc/config.local (never committed).")
    ] = None,
    secret_access_key: Annotated[
        str | None, typer.Option(help="S3 secret, written to .dvc/config.local (never committed).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Overwrite an existing dvc.yaml and params.yaml.")
    ] = False,
    code_deps: Annotated[
        bool,
        typer.Option(
            help="Make stages depend on opsline's code and config files (absolute paths "
            "when opsline is installed outside the project)."
        ),
    ] = True,
) -> None:
    """Write params.yaml + dvc.yaml (prepare → validate → train → evaluate) and a remote."""
    from opsline.dvc.project import init_project

    result = init_project(
        recipe,
        overrides or [],
        cwd=Path.cwd(),
        remote=remote,
        endpoint_url=endpoint_url,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        force=force,
        code_deps=code_deps,
        say=lambda m: typer.echo(m, err=True),
    )
    typer.echo(
        f"Wrote dvc.yaml ({' → '.join(result.stages)}) and params.yaml in "
        f"{result.project}; default remote {result.remote!r}."
    )
    typer.echo(
        "Next: `dvc repro`, then `git add dvc.yaml dvc.lock params.yaml metrics "
        "reports .dvc .gitignore` and `dvc push`."
    )
