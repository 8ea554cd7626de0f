"""Data-validation results as Prometheus metrics: ``<workspace>/metrics/validation-<model>.prom``.

Written after every validation (``opsline data validate``, and the check ``train`` runs
before fitting) by :func:`record_validation`. Metrics:

* ``opsline_data_validation_checks{model,split,check,outcome}`` — 1 per check of the last
  run, ``outcome`` = ``passed`` | ``failed``; ``check`` = ``<column>: <rule>`` (pandera's
  name for the rule; ``min_rows``, ``max_rows`` and ``unique_across_splits`` for the
  runner's own rules);
* ``opsline_data_validation_failed_checks{model}`` — failed checks in the last run;
* ``opsline_data_validation_failure_cases{model,split,check}`` — offending rows per failed check;
* ``opsline_data_validation_rows{model,split}`` — rows per split in the last run;
* ``opsline_data_validation_runs_total{model,outcome}`` — runs so far, carried across
  processes by reading the previous file;
* ``opsline_data_validation_last_run_timestamp_seconds{model}``.

Passing checks are listed from the recipe's ``Checks`` (each pandera column's dtype,
nullability, uniqueness and checks; the schema-wide checks; the cross-split rules); a
failure the runner reports under a name not in that list still counts as failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.data.validation import DATAFRAME, MAX_ROWS, MIN_ROWS, UNIQUE_ACROSS_SPLITS
from opsline.monitoring.textfile import metrics_path, read_samples, write_registry

if TYPE_CHECKING:  # pragma: no cover
    from opsline.data.validation import Checks, Failure, ValidationResult

RUNS = "opsline_data_validation_runs"


def failure_check(failure: Failure) -> str:
    """The stable ``check`` label of one failure reported by the runner: its rule's name,
    never the people-worded message ("has 3 rows, needs at least 10"), whose numbers would
    make new series every run."""
    return f"{failure.column}: {failure.rule}"


def schema_checks(checks: Checks, split: str = "train") -> list[str]:
    """Every check ``split`` is held to, as ``check`` labels (pandera's names)."""
    labels = [f"{DATAFRAME}: {MIN_ROWS}"]
    if (getattr(checks, "max_rows", None) or {}).get(split) is not None:
        labels.append(f"{DATAFRAME}: {MAX_ROWS}")
    schema = checks.schema
    columns: dict[str, Any] = dict(getattr(schema, "columns", {}) or {})
    if any(getattr(c, "required", True) for c in columns.values()):
        labels.append(f"{DATAFRAME}: column_in_dataframe")
    for name, column in columns.items():
        if getattr(column, "dtype", None) is not None:
            labels.append(f"{name}: dtype('{column.dtype}')")
        if not getattr(column, "nullable", True):
            labels.append(f"{name}: not_nullable")
        if getattr(column, "unique", False):
            labels.append(f"{name}: field_uniqueness")
        labels += [f"{name}: {_rule(check)}" for check in getattr(column, "checks", [])]
    labels += [f"{DATAFRAME}: {_rule(check)}" for check in getattr(schema, "checks", []) or []]
    if checks.key:
        labels.append(f"{checks.key}: {UNIQUE_ACROSS_SPLITS}")
    return list(dict.fromkeys(labels))  # de-duplicated, in order


def _rule(check: Any) -> str:
    # pandera reports a failed check by its error message when it has one, else its name.
    return str(getattr(check, "error", None) or getattr(check, "name", None) or check)


def record_validation(
    model: str, result: ValidationResult, checks: Checks, path: Path | None = None
) -> Path:
    """Write the metrics of one validation run of ``model``; returns the file written.

    Never raises for an unwritable file (the run's outcome matters more than its metrics).
    """
    from prometheus_client import CollectorRegistry, Counter, Gauge

    path = Path(path) if path is not None else metrics_path("validation", model)
    previous = read_samples(path)
    registry = CollectorRegistry()
    per_check = Gauge(
        "opsline_data_validation_checks",
        "Checks of the last validation run (1 per check and outcome).",
        ["model", "split", "check", "outcome"],
        registry=registry,
    )
    failed = Gauge(
        "opsline_data_validation_failed_checks",
        "Checks that failed in the last validation run.",
        ["model"],
        registry=registry,
    )
    cases = Gauge(
        "opsline_data_validation_failure_cases",
        "Offending rows per failed check in the last validation run.",
        ["model", "split", "check"],
        registry=registry,
    )
    rows = Gauge(
        "opsline_data_validation_rows",
        "Rows per split in the last validation run.",
        ["model", "split"],
        registry=registry,
    )
    runs = Counter(RUNS, "Validation runs by outcome.", ["model", "outcome"], registry=registry)
    stamp = Gauge(
        "opsline_data_validation_last_run_timestamp_seconds",
        "Unix time of the last validation run.",
        ["model"],
        registry=registry,
    )

    failing: dict[tuple[str, str], int] = {}
    for failure in result.failures:
        key = (failure.split, failure_check(failure))
        failing[key] = failing.get(key, 0) + max(int(failure.count), 1)
    for split in result.rows:
        for label in schema_checks(checks, split):
            if (split, label) not in failing:
                per_check.labels(model, split, label, "passed").set(1)
    for (split, label), count in failing.items():
        per_check.labels(model, split, label, "failed").set(1)
        cases.labels(model, split, label).set(count)
    for split, count in result.rows.items():
        rows.labels(model, split).set(count)
    failed.labels(model).set(len(failing))
    outcome = "passed" if result.ok else "failed"
    for name in ("passed", "failed"):
        before = previous.get((f"{RUNS}_total", (("model", model), ("outcome", name))), 0.0)
        runs.labels(model, name).inc(before + (1 if name == outcome else 0))
    stamp.labels(model).set(time.time())
    write_registry(registry, path)
    return path
