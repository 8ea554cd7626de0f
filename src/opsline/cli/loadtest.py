"""``opsline loadtest``: Locust against a running server, with SLOs as the exit code."""

from __future__ import annotations

from typing import Annotated

import typer

from opsline.cli.options import Recipe, say


def loadtest(
    recipe: Recipe,
    host: Annotated[
        str, typer.Option(help="Base URL of a running opsline server.")
    ] = "http://127.0.0.1:8000",
    users: Annotated[int, typer.Option(help="Concurrent simulated users.")] = 10,
    spawn_rate: Annotated[float, typer.Option(help="Users started per second.")] = 5,
    duration: Annotated[int, typer.Option(help="Seconds of load.")] = 30,
    slo_p95_ms: Annotated[
        float | None, typer.Option(help="SLO: p95 latency of /predict in ms; exit 1 if above.")
    ] = None,
    max_error_rate: Annotated[
        float | None, typer.Option(help="SLO: failed share of all requests (0-1); exit 1 if above.")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="Report folder (default .opsline/loadtests/RECIPE-TIME/).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Items per /predict/batch request.")] = 32,
    attach: Annotated[
        bool, typer.Option(help="Attach the report to the served model version in MLflow.")
    ] = True,
) -> None:
    """Load-test a running server with Locust; exit 1 if an SLO is broken."""
    from pathlib import Path

    from opsline.errors import OpslineError
    from opsline.loadtest.runner import run_loadtest

    result = run_loadtest(
        recipe,
        host,
        users=users,
        spawn_rate=spawn_rate,
        duration=duration,
        slo_p95_ms=slo_p95_ms,
        max_error_rate=max_error_rate,
        out=Path(out) if out else None,
        batch_size=batch_size,
        attach=attach,
    )
    typer.echo(result.table)
    typer.echo(f"SLO: {result.verdict.label}")
    typer.echo(f"Reports: {result.out_dir} (report.html, locust_stats.csv, summary.json)")
    say(result.attached)
    if not result.verdict.passed:
        raise OpslineError(f"SLO broken: {'; '.join(result.verdict.broken)}.")
