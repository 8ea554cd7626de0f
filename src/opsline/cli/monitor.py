"""``opsline monitor``: look at how the production model meets the world.

``opsline monitor drift RECIPE`` compares the logged requests with the model's reference
and exits with the verdict, so a cron job or CI step can act on it:

* 0 — no data drift;
* 1 — data drift detected;
* 2 — no verdict: not enough logged requests, no reference saved with the model version,
  no model, or a bad option (one sentence on stderr, as every opsline error).

``opsline monitor watch RECIPE`` runs the retrain policy (:mod:`opsline.cli.watch`).

``opsline monitor compare RECIPE`` compares the served model with the shadow candidate
(``OPSLINE_SHADOW_MODEL_URI``) on the requests both answered: agreement, and each model's
error where feedback exists; exit 2 when nothing was compared.

Everything heavy (Evidently, MLflow, SQLAlchemy) is imported inside the commands, so
``opsline --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsline.cli.watch import watch  # typer only; the loop itself is imported lazily

if TYPE_CHECKING:  # pragma: no cover
    from opsline.monitoring.drift import DriftResult

monitor_app = typer.Typer(
    help="Monitor the production model: data drift of logged requests, "
    "the served model against a shadow candidate.",
    no_args_is_help=True,
)

RecipeArg = Annotated[str, typer.Argument(help="Recipe name (see `opsline recipes`).")]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Hydra overrides, e.g. data=grapevine (which registered model)."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a folder. "
        "Default: models:/RECIPE@production.",
    ),
]


def _say(message: str) -> None:
    typer.echo(message, err=True)


@monitor_app.command("drift")
def drift(
    recipe: RecipeArg,
    window: Annotated[
        str,
        typer.Option(
            help="Logged requests to compare: the last N (1000) or a time span (30m, 24h, 7d)."
        ),
    ] = "1000",
    html: Annotated[
        Path | None, typer.Option(help="Also write Evidently's HTML report to this file.")
    ] = None,
    model: ModelOpt = None,
    min_rows: Annotated[
        int, typer.Option(min=1, help="Fewer logged requests than this: no verdict (exit 2).")
    ] = 100,
    drift_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Drift when at least this share of the monitored "
            "features drifted. Default: more than chance "
            "explains (2 of 4 features, 5 of 33).",
        ),
    ] = None,
    log_reports: Annotated[
        bool,
        typer.Option(
            "--log/--no-log",
            help="Log the JSON and HTML reports to the model version's MLflow run.",
        ),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
    overrides: OverridesArg = None,
) -> None:
    """Data drift of logged requests against the model's reference.

    Exit 0: no drift; 1: drift detected; 2: no verdict (too few requests, no reference,
    no model).
    """
    from opsline.config import load_config
    from opsline.errors import NoModelError
    from opsline.monitoring.drift import compute_drift, describe_window, parse_window
    from opsline.monitoring.reference import DriftUnavailableError, read_reference
    from opsline.recipes.registry import get_recipe
    from opsline.tracking.registry import resolve_model

    last, since = parse_window(window)  # a bad window fails before anything slow
    cfg = load_config(recipe, overrides or [])
    served = get_recipe(recipe)
    name = served.model_name(cfg)
    drift_share = served.drift_share if drift_share is None else drift_share
    try:
        ref = resolve_model(recipe, model or f"models:/{name}@production", cfg.tracking.uri)
    except NoModelError as error:  # no model: no verdict (2), not a failure of the check
        raise DriftUnavailableError(str(error)) from None
    reference = read_reference(ref.local_dir, ref.version)
    current, where = _logged_features(ref.name, last, since)
    result = compute_drift(
        reference,
        current,
        min_rows=min_rows,
        drift_share=drift_share,
        html=html is not None or log_reports,
        window=describe_window(window),
        model=ref.name,
        version=ref.version,
    )
    if not result.verdict:
        hint = f" at {where}" if result.rows == 0 else ""
        raise DriftUnavailableError(
            f"{result.message} logged for {ref.name}{hint} in the "
            f"{result.window}; wait for more requests or lower "
            "--min-rows"
        )
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(result.report_html or "", encoding="utf-8")
        _say(f"HTML report: {html}")
    if log_reports:
        _log_to_run(result, ref.run_id, cfg.tracking.uri)
    if as_json:
        typer.echo(json.dumps(result.summary()))
    else:
        typer.echo(format_result(result))
    if result.detected:
        raise typer.Exit(1)


def _logged_features(model_name: str, last: int | None, since: float | None) -> tuple:
    """The window's features and, for messages, where the log is (no password)."""
    from opsline.monitoring.prediction_log import PredictionLog, safe_uri

    log = PredictionLog.open()
    try:
        return log.features(model_name, last=last, since=since), safe_uri(log.uri)
    finally:
        log.close()


def _log_to_run(result: DriftResult, run_id: str | None, tracking_uri: str | None) -> None:
    from opsline.monitoring.drift import REPORT_DIR, report_files
    from opsline.tracking.runs import log_texts_to_run

    if run_id is None:
        _say("Reports not logged: the model is a folder, not a registered version.")
        return
    files = report_files(result)
    log_texts_to_run(run_id, files, REPORT_DIR, uri=tracking_uri)
    _say(f"Reports logged to run {run_id}: " + ", ".join(f"{REPORT_DIR}/{f}" for f in files))


def format_result(result: DriftResult) -> str:
    """The verdict line and a per-feature table (drifted features first)."""
    version = f" v{result.version}" if result.version else ""
    verdict = "DATA DRIFT" if result.detected else "no data drift"
    drifted = len(result.drifted_features)
    lines = [
        (
            f"{result.model}{version}: {verdict}: {drifted} of {len(result.features)} "
            f"features drifted ({result.share:.0%}; drift from {result.drift_share:.0%}), "
            f"{result.rows} requests ({result.window}) against {result.reference_rows} "
            "reference rows"
        )
    ]
    width = max([len("feature"), *(len(f.name) for f in result.features)])
    method_width = max([len("method"), *(len(f.method) for f in result.features)])
    lines.append(
        f"  {'feature':<{width}}  {'method':<{method_width}}  {'score':>10}  "
        f"{'threshold':>9}  drifted"
    )
    for f in result.features:
        lines.append(
            f"  {f.name:<{width}}  {f.method:<{method_width}}  {f.score:>10.4g}  "
            f"{f.threshold:>9.4g}  {'yes' if f.drifted else 'no'}"
        )
    if result.skipped:
        lines.append(f"  not tested (no values on one side): {', '.join(result.skipped)}")
    return "\n".join(lines)


@monitor_app.command("compare")
def compare_models(
    recipe: RecipeArg,
    window: Annotated[
        str,
        typer.Option(
            help="Requests to compare: the last N answered by both models (1000) "
            "or a time span (30m, 24h, 7d)."
        ),
    ] = "1000",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the comparison as one JSON object.")
    ] = False,
    overrides: OverridesArg = None,
) -> None:
    """Served model vs shadow on the same logged requests: agreement and, where feedback
    exists, each model's error (start the server with OPSLINE_SHADOW_MODEL_URI).

    Exit 0 with the comparison; 2 when no request was answered by both models.
    """
    from opsline.config import load_config
    from opsline.monitoring.compare import NothingToCompareError, compare
    from opsline.monitoring.drift import describe_window, parse_window
    from opsline.monitoring.prediction_log import PredictionLog, safe_uri
    from opsline.recipes.registry import get_recipe

    last, since = parse_window(window)  # a bad window fails before anything slow
    served = get_recipe(recipe)
    name = served.model_name(load_config(recipe, overrides or []))
    log = PredictionLog.open()
    try:
        result = compare(log, name, served, last=last, since=since)
        where = safe_uri(log.uri)
    finally:
        log.close()
    if not result.compared:
        raise NothingToCompareError(
            f"No shadow predictions logged for {name} in the {describe_window(window)} at "
            f"{where}; start the server with OPSLINE_SHADOW_MODEL_URI=models:/{name}/VERSION "
            "(the candidate) and send it traffic."
        )
    typer.echo(json.dumps(result.to_dict()) if as_json else result.summary())


# `opsline monitor watch`: the retrain loop as a command (its own module: cli/watch.py).
monitor_app.command("watch")(watch)
