"""The end of a sweep: a table of trials, parameter importances, all logged to the parent run."""

from __future__ import annotations

import json
from typing import Any

from opsline.sweeps.space import SweepSpec


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One JSON-ready dict per trial: number, state, value, params, run id, error."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        seconds = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else None
        )
        # A pruned trial's value is its last intermediate (pruning) metric, not the objective.
        value = trial.value if trial.state.name == "COMPLETE" else None
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name,
                "value": value,
                "seconds": None if seconds is None else round(seconds, 1),
                "params": dict(trial.params),
                "run_id": trial.user_attrs.get("run_id"),
                "error": trial.user_attrs.get("error"),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]], metric: str) -> str:
    """A fixed-width text table (what the CLI prints and the parent run stores)."""
    keys = sorted({k for row in rows for k in row["params"]})
    header = ["trial", "state", metric, "seconds", *keys]
    lines = [header]
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.5g}"
        params = [_short(row["params"].get(k)) for k in keys]
        lines.append(
            [
                str(row["trial"]),
                row["state"],
                value,
                "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
                *params,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def importances(study: Any) -> tuple[dict[str, float] | None, str | None]:
    """``optuna.importance.get_param_importances`` (fANOVA), or a note saying why not."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, f"importance skipped: {len(complete)} complete trial(s), need at least 2"
    try:
        values = optuna.importance.get_param_importances(study)
    except Exception as error:  # noqa: BLE001 - e.g. every trial sampled the same values
        return None, f"importance skipped: {type(error).__name__}: {error}"
    return {k: float(v) for k, v in values.items()}, None


def importance_figure(values: dict[str, float], metric: str) -> Any:
    """A horizontal bar chart of parameter importances."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(values)[::-1]  # most important on top
    figure, axis = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
    axis.barh(names, [values[n] for n in names], color="#4c72b0")
    axis.set_xlabel(f"importance for {metric} (fANOVA, normalized)")
    axis.set_title("Hyperparameter importance")
    figure.tight_layout()
    return figure


def log_to_parent(
    parent: Any,
    study: Any,
    spec: SweepSpec,
    rows: list[dict[str, Any]],
    table: str,
    values: dict[str, float] | None,
    note: str | None,
) -> None:
    """Store table, trials, space, importances and the best trial on the parent run."""
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    parent.log_text(table + "\n", "sweep/summary.txt")
    parent.log_dict({"trials": rows}, "sweep/trials.json")
    counts = {
        state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL")
    }
    parent.log_metrics({f"trials_{k.lower()}": v for k, v in counts.items()})
    if values is not None:
        parent.log_dict(values, "sweep/importance.json")
        figure = importance_figure(values, spec.metric)
        parent.log_figure(figure, "sweep/importance.png")
        plt.close(figure)
    elif note:
        parent.log_text(note + "\n", "sweep/importance.txt")
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        parent.log_metrics({f"best_{spec.metric}": float(best.value)})
        parent.set_tags(
            {
                "sweep.best_trial": best.number,
                "sweep.best_params": json.dumps(best.params, sort_keys=True),
                "sweep.best_run_id": best.user_attrs.get("run_id", ""),
            }
        )
