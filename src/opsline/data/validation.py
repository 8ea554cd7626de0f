"""Run a recipe's checks over a prepared dataset and write a report a person can act on.

pandera does the per-split schema work (lazily, so every failure is collected, not just the
first); this module adds the cross-split rules (minimum rows, no record in two splits) and
formats everything as one report naming splits, columns, checks and example rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from opsline.data.dataset import Dataset

# How many failing rows to show per (split, column, check); the report stays readable.
_EXAMPLES = 5
# Names of the runner's own rules (pandera names the schema's), stable across runs.
DATAFRAME = "(dataframe)"  # the column of whole-frame rules
MIN_ROWS = "min_rows"
MAX_ROWS = "max_rows"
UNIQUE_ACROSS_SPLITS = "unique_across_splits"


@dataclass
class Checks:
    """Validation rules for a prepared dataset (what ``Recipe.checks`` returns).

    Attributes:
        schema: a ``pandera.DataFrameSchema`` applied to every split.
        key: column that identifies one record; the runner checks no key is in two splits.
        min_rows: minimum row count per split name.
        max_rows: maximum row count per split name (no bound for a split not named).
    """

    schema: Any
    key: str | None = None
    min_rows: dict[str, int] = field(default_factory=dict)
    max_rows: dict[str, int] = field(default_factory=dict)


@dataclass
class Failure:
    split: str
    column: str
    check: str
    rows: list[str] = field(default_factory=list)
    count: int = 0
    #: Stable name of the rule (``min_rows``, ``max_rows``, ``unique_across_splits``, or
    #: pandera's check name) — ``check`` is worded for people and carries numbers.
    rule: str = ""

    def __post_init__(self) -> None:
        self.rule = self.rule or self.check

    def line(self) -> str:
        shown = ", ".join(self.rows[:_EXAMPLES])
        more = f" (+{self.count - _EXAMPLES} more)" if self.count > _EXAMPLES else ""
        where = f" at {shown}{more}" if shown else ""
        return f"  [{self.split}] column {self.column!r}: {self.check}{where}"


@dataclass
class ValidationResult:
    data_version: str
    rows: dict[str, int]
    failures: list[Failure]

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.rows.items())
        head = f"Data version {self.data_version[:12]} ({sizes}):"
        if self.ok:
            return f"{head} all checks passed."
        return "\n".join(
            [f"{head} {len(self.failures)} check(s) failed.", *(f.line() for f in self.failures)]
        )


def _schema_failures(split: str, frame: Any, schema: Any) -> list[Failure]:
    from pandera.errors import SchemaErrors

    try:
        schema.validate(frame, lazy=True)
        return []
    except SchemaErrors as errors:
        cases = errors.failure_cases
    grouped: dict[tuple[str, str], Failure] = {}
    for case in cases.itertuples(index=False):
        column = str(case.column) if case.column is not None else "(dataframe)"
        check = str(case.check)
        failure = grouped.setdefault((column, check), Failure(split, column, check))
        failure.count += 1
        if len(failure.rows) < _EXAMPLES:
            row = "" if case.index is None or case.index != case.index else f"row {int(case.index)}"
            value = f"value {case.failure_case!r}"
            failure.rows.append(f"{row} ({value})" if row else value)
    return list(grouped.values())


def _leaks(frames: dict[str, Any], key: str) -> list[Failure]:
    """Records (by ``key``) present in more than one split: one failure per split pair."""
    first_seen: dict[object, str] = {}
    leaks: dict[tuple[str, str], Failure] = {}
    for split, frame in frames.items():
        if key not in frame.columns:
            continue
        for value in frame[key].dropna().unique().tolist():
            other = first_seen.setdefault(value, split)
            if other != split:
                failure = leaks.setdefault(
                    (split, other),
                    Failure(
                        split,
                        key,
                        f"records also present in split {other!r}",
                        rule=UNIQUE_ACROSS_SPLITS,
                    ),
                )
                failure.count += 1
                if len(failure.rows) < _EXAMPLES:
                    failure.rows.append(f"{key}={value!r}")
    return list(leaks.values())


def validate_dataset(dataset: Dataset, checks: Checks) -> ValidationResult:
    """Apply ``checks`` to every split of ``dataset``."""
    frames = dataset.frames()
    failures: list[Failure] = []
    for split, frame in frames.items():
        minimum = checks.min_rows.get(split, 1)
        if len(frame) < minimum:
            failures.append(
                Failure(
                    split,
                    DATAFRAME,
                    f"has {len(frame)} rows, needs at least {minimum}",
                    rule=MIN_ROWS,
                )
            )
        maximum = checks.max_rows.get(split)
        if maximum is not None and len(frame) > maximum:
            failures.append(
                Failure(
                    split,
                    DATAFRAME,
                    f"has {len(frame)} rows, allows at most {maximum}",
                    rule=MAX_ROWS,
                )
            )
        failures += _schema_failures(split, frame, checks.schema)
    if checks.key:
        failures += _leaks(frames, checks.key)
    return ValidationResult(dataset.version, {k: len(v) for k, v in frames.items()}, failures)
