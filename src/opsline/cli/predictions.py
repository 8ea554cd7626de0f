"""``opsline predictions``: the prediction log, outside the server.

* ``opsline predictions export RECIPE [--since 24h] -o FILE.parquet`` — every logged row of
  the recipe's registered model (both the served model's and a shadow's), with its feedback:
  metadata, the request and response JSON, and one ``feature.<name>`` column per monitored
  feature. Parquet, so pandas / DuckDB / Evidently read it as it is.
* ``opsline predictions prune [--days N] [--max-rows N]`` — apply a retention now (the
  server does it hourly with ``OPSLINE_PREDICTION_LOG_RETENTION_DAYS`` / ``…_MAX_ROWS``).

The log is ``$OPSLINE_PREDICTION_LOG_URI`` or ``.opsline/predictions.db`` (``--log``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

predictions_app = typer.Typer(help="Export or prune the prediction log.", no_args_is_help=True)

LogOpt = Annotated[
    str | None,
    typer.Option(
        "--log",
        help="SQLAlchemy URL of the log. Default: $OPSLINE_PREDICTION_LOG_URI or "
        "sqlite:///.opsline/predictions.db.",
    ),
]


@predictions_app.command("export")
def export(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `opsline recipes`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Hydra overrides, e.g. data=grapevine (which registered model)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only rows from the last span: 30m, 24h, 7d.")
    ] = None,
    log: LogOpt = None,
) -> None:
    """Write the logged predictions of RECIPE's model (and their feedback) to Parquet."""
    from opsline.config import load_config
    from opsline.errors import UsageError
    from opsline.monitoring.drift import parse_window
    from opsline.monitoring.prediction_log import PredictionLog, safe_uri
    from opsline.recipes.registry import get_recipe

    name = get_recipe(recipe).model_name(load_config(recipe, overrides or []))
    start = None
    if since is not None:
        last, start = parse_window(since)
        if last is not None:
            raise UsageError(f"--since takes a time span (30m, 24h, 7d), not {since!r}.")
    if output.suffix != ".parquet":
        raise UsageError(f"--output must be a .parquet file, not {str(output)!r}.")
    store = PredictionLog.open(log)
    try:
        frame = store.frame(name, since=start)
    finally:
        store.close()
    if frame.empty:
        raise UsageError(
            f"No predictions of {name!r} are logged"
            f"{' in the last ' + since if since else ''} ({safe_uri(store.uri)})."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output, index=False)
    labelled = int(frame["actual"].notna().sum())
    typer.echo(f"Wrote {len(frame)} predictions of {name} ({labelled} with feedback) to {output}")


@predictions_app.command("prune")
def prune(
    days: Annotated[
        float, typer.Option(help="Delete rows older than this many days (0 = no age limit).")
    ] = 30,
    max_rows: Annotated[
        int, typer.Option(help="Keep at most this many rows, newest first (0 = no limit).")
    ] = 1_000_000,
    log: LogOpt = None,
) -> None:
    """Delete old predictions (and feedback left without one)."""
    from opsline.errors import UsageError
    from opsline.monitoring.prediction_log import PredictionLog, safe_uri

    if days < 0 or max_rows < 0:
        raise UsageError("--days and --max-rows must not be negative.")
    store = PredictionLog.open(log)
    try:
        deleted = store.prune(max_age_days=days, max_rows=max_rows)
    finally:
        store.close()
    typer.echo(f"Deleted {deleted} predictions from {safe_uri(store.uri)}.")
