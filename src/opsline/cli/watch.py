"""``opsline monitor watch RECIPE``: the retrain loop as a command (registered on
``opsline monitor`` by :mod:`opsline.cli.monitor`; the logic is
:mod:`opsline.monitoring.watch`).

Every ``--interval`` seconds: drift of the logged requests and live quality from feedback →
the retrain policy → a ``retrain`` job (prepare with feedback rows → train → promotion gate)
→ its outcome. ``--dry-run`` says what it would do and starts nothing; ``--once`` checks once
and exits (0 — nothing to do or the retrain ended; 1 — the retrain failed or the loop
stopped after repeated failures; 2 — no check possible: no model, bad policy). Without
``--once`` a missing production model is waited for, as the server does.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer


def watch(
    recipe: Annotated[str, typer.Argument(help="Recipe name (see `opsline recipes`).")],
    policy: Annotated[
        str | None,
        typer.Option(
            help="Retrain policy: a name in configs/monitor or a YAML file. Default: the "
            "recipe's own file if there is one, else `default`."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and say what would be done; start nothing.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="One check (and its retrain, if any), then exit.")
    ] = False,
    interval: Annotated[float, typer.Option(min=1.0, help="Seconds between checks.")] = 60.0,
    window: Annotated[
        str,
        typer.Option(
            help="Logged requests compared with the reference: the last N or a time span "
            "(30m, 24h)."
        ),
    ] = "1000",
    min_rows: Annotated[
        int, typer.Option(min=1, help="Fewer logged requests than this: no drift verdict.")
    ] = 100,
    drift_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Drift when at least this share of the features "
            "drifted. Default: more than chance explains "
            "(2 of 4 features, 5 of 33).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check.")] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Hydra overrides, e.g. data=grapevine (which registered model)."),
    ] = None,
) -> None:
    """Watch the production model and retrain by the policy: drift on K consecutive checks
    or live error past a threshold → retrain job → gate (Ctrl-C stops)."""
    from opsline.config import load_config
    from opsline.errors import NoModelError, UsageError
    from opsline.jobs.manager import JobManager
    from opsline.monitoring.drift import parse_window
    from opsline.monitoring.policy import load_policy
    from opsline.monitoring.watch import Watch, describe_action, summary
    from opsline.recipes.registry import get_recipe

    parse_window(window)  # a bad window fails before anything slow
    served = get_recipe(recipe)
    chosen = load_policy(policy, recipe)
    if chosen is None:
        raise UsageError(
            "The policy `off` retrains nothing, so there is nothing to watch: "
            "name a policy with --policy (or leave it out)."
        )
    cfg = load_config(recipe, overrides or [])
    loop = Watch(
        served,
        chosen,
        JobManager(),
        model_name=served.model_name(cfg),
        tracking_uri=cfg.tracking.uri,
        window=window,
        min_rows=min_rows,
        drift_share=served.drift_share if drift_share is None else drift_share,
        dry_run=dry_run,
    )
    typer.echo(
        f"Watching {served.model_name(cfg)} with policy {chosen.name!r}"
        f"{' (dry run)' if dry_run else ''}; "
        + ("one check." if once else f"a check every {interval:g} s (Ctrl-C stops)."),
        err=True,
    )
    try:
        while True:
            try:
                check = loop.check()
            except NoModelError as error:
                # --once: no check possible (2). Watching: like the server, wait for a
                # model to be promoted.
                if once:
                    raise UsageError(str(error)) from None
                typer.echo(f"{error} Checking again in {interval:g} s.", err=True)
                time.sleep(interval)
                continue
            typer.echo(
                json.dumps(summary(check), default=str) if as_json else "\n".join(check.lines())
            )
            if check.action is not None and check.action.job_id:
                ended = loop.wait(check.action.job_id)
                typer.echo(describe_action(ended), err=as_json)
                if once and (ended is None or ended.outcome == "failed"):
                    raise typer.Exit(1)
            if loop.state.stopped:
                typer.echo(f"The loop stopped: {loop.state.stopped}", err=True)
                raise typer.Exit(1)
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        typer.echo("Stopped watching.", err=True)
