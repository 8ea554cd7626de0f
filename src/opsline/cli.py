"""The ``opsline`` command line: a thin Typer shell over :mod:`opsline.pipeline`.

Everything heavy is imported inside the commands so ``opsline --help`` stays fast. Expected
failures (``OpslineError``) become one sentence on stderr and the error's exit code; anything
unexpected becomes one sentence plus a log file with the traceback, never a traceback dump.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from opsline.cli_dvc import dvc_app  # light: typer only, the rest is lazy
from opsline.cli_monitor import monitor_app  # light: typer only, the rest is lazy
from opsline.cli_predictions import predictions_app
from opsline.cli_stack import stack_app  # light: typer only, the stack package is lazy
from opsline.errors import OpslineError, UsageError

app = typer.Typer(
    help="opsline: from raw data to a monitored ML service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Prepare and validate datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(monitor_app, name="monitor")  # opsline monitor drift … (cli_monitor.py)
app.add_typer(predictions_app, name="predictions")  # export / prune the prediction log
app.add_typer(stack_app, name="stack")  # PostgreSQL + S3 + MLflow on this machine
# `opsline dvc init`: a DVC pipeline over these commands (cli_dvc.py; its DVC calls are lazy).
app.add_typer(dvc_app, name="dvc")

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


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def recipes() -> None:
    """List the registered recipes."""
    from opsline.recipes.registry import get_recipe, list_recipes

    for name in list_recipes():
        typer.echo(f"{name}\t{get_recipe(name).description}")


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


@app.command()
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

    result = pipeline.train(recipe, overrides or [], say=_say)
    _print_metrics(result.metrics)
    if metrics_file:
        from opsline.outputs import write_json

        write_json(metrics_file, result.metrics)
    if model_dir:
        from opsline.config import load_config
        from opsline.outputs import copy_model

        copy_model(
            recipe, result.run_id, load_config(recipe, overrides or []).tracking.uri, model_dir
        )


@app.command()
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
        _print_metrics(metrics)


@app.command()
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


@app.command()
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


@app.command()
def serve(
    recipe: Recipe,
    model: ModelUri = None,
    host: Host = None,
    port: Port = None,
    overrides: Overrides = None,
) -> None:
    """Serve the model over HTTP: /predict, /ui, /metrics, /docs."""
    _serve(recipe, model, host, port, overrides or [])


@app.command()
def run(
    recipe: Recipe,
    overrides: Overrides = None,
    serve_after: Annotated[bool, typer.Option("--serve", help="Serve when done.")] = False,
    host: Host = None,
    port: Port = None,
) -> None:
    """The whole path: prepare → validate → train → evaluate → register → promote [→ serve]."""
    from opsline import pipeline

    results, _ = pipeline.run(recipe, overrides or [], say=_say)
    for result in results:
        typer.echo(f"version {result.version} ({result.kind}):")
        _print_metrics({k: v for k, v in result.metrics.items() if k.startswith("test_")})
    if serve_after:
        _serve(recipe, None, host, port, overrides or [])


@app.command()
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
    _say(result.attached)
    if not result.verdict.passed:
        raise OpslineError(f"SLO broken: {'; '.join(result.verdict.broken)}.")


@app.command()
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
        say=_say,
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


def _serve(
    recipe: str,
    model: str | None,
    host: str | None,
    port: int | None,
    overrides: list[str] | None = None,
) -> None:
    from opsline.config import load_config
    from opsline.recipes.registry import get_recipe
    from opsline.serving import serve as run_server
    from opsline.serving.settings import ServingSettings

    # Validates the recipe name and overrides, gives config defaults, and (e.g. with
    # data=grapevine) the registered model name to serve.
    cfg = load_config(recipe, overrides or [])
    # Only what was given: an explicit None would override OPSLINE_MODEL_URI /
    # OPSLINE_TRACKING_URI from the environment (pydantic-settings ranks init arguments first).
    given = {
        k: v
        for k, v in {"model_uri": model, "tracking_uri": cfg.tracking.uri}.items()
        if v is not None
    }
    settings = ServingSettings(
        recipe=recipe,
        model_name=get_recipe(recipe).model_name(cfg),
        host=host or cfg.serving.host,
        port=port or cfg.serving.port,
        **given,
    )
    _say(f"Serving {recipe} on http://{settings.host}:{settings.port} (UI at /ui, docs at /docs)")
    run_server(settings)


def _print_metrics(metrics: dict[str, float]) -> None:
    for key in sorted(metrics):
        typer.echo(f"  {key:<24} {metrics[key]:.4f}")


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
