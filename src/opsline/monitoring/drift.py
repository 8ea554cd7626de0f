"""Data drift of logged requests against the model's reference, with Evidently 0.7.

:func:`compute_drift` runs Evidently's ``DataDriftPreset`` over the monitored features both
frames have and reads its snapshot: per feature the test Evidently picked (K-S / chi-square
p-values up to 1000 reference rows, Wasserstein / Jensen-Shannon distances above), the
score, the threshold and whether that feature drifted; overall, the share of drifted
features and the verdict (drift when at least ``drift_share`` of them drifted, Evidently's
rule). Below ``min_rows`` logged requests there is no verdict, only "not enough data".

The share is, by default, not a fixed 0.5 but what chance cannot explain
(:func:`chance_share`): each feature's test flags about 5 % of features when nothing
changed, so with 33 house-price fields ~1.7 drift by chance and a fixed half would need 17
— houses twice as large and 40 years older (7 fields) would pass unnoticed — while with 4
features one chance flag would be a quarter.

Evidently is imported inside the functions: it takes seconds to import.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsline.errors import UsageError
from opsline.monitoring.reference import _missing, normalize_features

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: How often a feature's test flags drift when nothing changed (its p-value threshold).
FEATURE_FALSE_ALARM = 0.05
#: The automatic share: a count of drifted features chance reaches in at most 1 check of 20.
CHECK_FALSE_ALARM = 0.05


def chance_share(
    features: int,
    feature_alarm: float = FEATURE_FALSE_ALARM,
    check_alarm: float = CHECK_FALSE_ALARM,
) -> float:
    """The smallest share ``k / features`` of drifted features that chance alone reaches
    with probability at most ``check_alarm`` (binomial tail, each feature flagged with
    probability ``feature_alarm``, as if independent): 2 of 4, 3 of 8, 5 of 33."""
    from math import comb

    def tail(k: int) -> float:
        return sum(
            comb(features, i) * feature_alarm**i * (1 - feature_alarm) ** (features - i)
            for i in range(k, features + 1)
        )

    k = next((k for k in range(1, features + 1) if tail(k) <= check_alarm), features)
    return k / features


DEFAULT_MIN_ROWS = 100
#: Folder of a model's MLflow run the reports are logged to.
REPORT_DIR = "drift"

# What a check can conclude. Only ``drift`` and ``no_drift`` are verdicts; the others say
# why there is none (``message`` is the sentence to show).
DRIFT, NO_DRIFT = "drift", "no_drift"
NOT_ENOUGH_DATA, NO_REFERENCE, NO_MODEL, ERROR = (
    "not_enough_data",
    "no_reference",
    "no_model",
    "error",
)
VERDICTS = (DRIFT, NO_DRIFT)

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class FeatureDrift:
    """One feature's test: ``drifted`` is Evidently's decision (a p-value below the
    threshold, or a distance at or above it)."""

    name: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    """One drift check. ``report_json`` / ``report_html`` are Evidently's snapshot (the HTML
    only when asked for); ``summary()`` is everything else, JSON-ready."""

    status: str
    rows: int = 0
    min_rows: int = DEFAULT_MIN_ROWS
    share: float | None = None
    detected: bool = False
    features: list[FeatureDrift] = field(default_factory=list)
    message: str = ""
    # None until a verdict: by default the share depends on how many features were tested.
    drift_share: float | None = None
    reference_rows: int = 0
    skipped: list[str] = field(default_factory=list)  # features without values on a side
    window: str | None = None
    model: str | None = None
    version: str | None = None
    checked_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    logged_to: str | None = None  # where the reports were logged (e.g. runs:/ID/drift/…)
    report_json: str | None = field(default=None, repr=False)
    report_html: str | None = field(default=None, repr=False)

    @property
    def verdict(self) -> bool:
        """Whether the check concluded (drift or no drift) rather than saying why not."""
        return self.status in VERDICTS

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def summary(self) -> dict[str, Any]:
        """What ``GET /drift`` answers (no reports)."""
        out = asdict(self)
        del out["report_json"], out["report_html"]
        out["checked_at"] = datetime.fromtimestamp(self.checked_at, UTC).isoformat(
            timespec="seconds"
        )
        out["drifted_features"] = self.drifted_features
        out["has_report"] = self.report_html is not None
        return out


def parse_window(text: str | int, now: float | None = None) -> tuple[int | None, float | None]:
    """``"1000"`` → the last 1000 requests; ``"30m"`` / ``"24h"`` / ``"7d"`` → those since.

    Returns:
        ``(last, since)``: a row count or a unix time; the other is ``None``.

    Raises:
        UsageError: anything else (the message lists the accepted forms).
    """
    value = str(text).strip().lower()
    if value.isdigit() and int(value) > 0:
        return int(value), None
    match = _SPAN.match(value)
    if match and float(match[1]) > 0:
        seconds = float(match[1]) * _SECONDS[match[2]]
        return None, (time.time() if now is None else now) - seconds
    raise UsageError(
        f"Invalid drift window {str(text)!r}: give a number of requests "
        "(e.g. 1000) or a time span (e.g. 30m, 24h, 7d)."
    )


def describe_window(text: str | int) -> str:
    """``"1000"`` → ``"last 1000 requests"``, ``"24h"`` → ``"last 24h"``."""
    value = str(text).strip().lower()
    return f"last {value} requests" if value.isdigit() else f"last {value}"


def not_enough_data(rows: int, min_rows: int, **fields: Any) -> DriftResult:
    return DriftResult(
        status=NOT_ENOUGH_DATA,
        rows=rows,
        min_rows=min_rows,
        message=f"not enough data ({rows} of {min_rows} requests)",
        **fields,
    )


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    min_rows: int = DEFAULT_MIN_ROWS,
    drift_share: float | None = None,
    html: bool = False,
    **fields: Any,
) -> DriftResult:
    """Compare ``current`` (logged requests' features) with ``reference`` (the train split's).

    Args:
        reference: the model's reference frame, one column per monitored feature.
        current: the window of logged requests, same columns (extra ones are ignored).
        min_rows: fewer current rows than this give ``not_enough_data``, not a verdict.
        drift_share: share of drifted features from which the dataset drifts; ``None`` =
            :func:`chance_share` of the number of features tested.
        html: also render Evidently's HTML report (a few MB) into ``report_html``.
        **fields: copied onto the result (``window``, ``model``, ``version``).
    """
    started = time.perf_counter()
    rows = len(current)
    if rows < min_rows or rows == 0:
        return not_enough_data(
            rows, min_rows, reference_rows=len(reference), drift_share=drift_share, **fields
        )
    reference, current = normalize_features(reference), normalize_features(current)
    numerical, categorical, skipped = [], [], []
    for name in reference.columns:
        if name not in current.columns:
            continue
        if reference[name].dtype == "float64":
            current[name] = _as_numbers(current[name])
        else:
            current[name] = (
                current[name].map(lambda v: None if _missing(v) else str(v)).astype(object)
            )
        if not reference[name].notna().any() or not current[name].notna().any():
            skipped.append(name)  # Evidently refuses an empty column; nothing to compare
        elif reference[name].dtype == "float64":
            numerical.append(name)
        else:
            categorical.append(name)
    columns = numerical + categorical
    base = dict(
        rows=rows, min_rows=min_rows, reference_rows=len(reference), skipped=skipped, **fields
    )
    if not columns:
        return DriftResult(
            status=NOT_ENOUGH_DATA,
            **base,
            drift_share=drift_share,
            message=f"not enough data: no monitored feature has values in "
            f"both the reference and the {rows} logged requests",
        )
    if drift_share is None:
        drift_share = chance_share(len(columns))
    base["drift_share"] = drift_share
    # Half a feature below the share: Evidently compares count / n with it in floating
    # point, and k / n must count as reached.
    snapshot = _run_evidently(
        reference[columns],
        current[columns],
        numerical,
        categorical,
        max(drift_share - 0.5 / len(columns), 1e-9),
    )
    result = _read_snapshot(snapshot.dict(), drift_share, base)
    result.report_json = snapshot.json()
    if html:
        result.report_html = snapshot.get_html_str(as_iframe=False)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _as_numbers(column: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_numeric(column, errors="coerce").astype("float64")


def _run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: list[str],
    categorical: list[str],
    drift_share: float,
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    # include_tests: each feature's drift decision comes as a test (FAIL = drifted), so the
    # direction of the comparison (p-value below, distance above) stays Evidently's.
    report = Report(
        [DataDriftPreset(columns=numerical + categorical, drift_share=drift_share)],
        include_tests=True,
    )
    return report.run(
        Dataset.from_pandas(current.reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference.reset_index(drop=True), data_definition=definition),
    )


def _read_snapshot(
    snapshot: dict[str, Any], drift_share: float, base: dict[str, Any]
) -> DriftResult:
    """Per-feature method/score/threshold and the drift decisions from ``snapshot.dict()``."""
    failed = {
        t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in snapshot.get("tests", [])
    }
    share, dataset_test = None, None
    features = []
    for metric in snapshot["metrics"]:
        config = metric["config"]
        kind = config.get("type", "")
        if kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
            dataset_test = failed.get(metric["id"])
        elif kind.endswith(":ValueDrift"):
            score, threshold = float(metric["value"]), float(config["threshold"])
            method = str(config["method"])
            drifted = failed.get(metric["id"])
            if drifted is None:  # no test recorded: Evidently's own rule
                drifted = score < threshold if "p_value" in method else score >= threshold
            features.append(FeatureDrift(config["column"], method, score, threshold, bool(drifted)))
    if share is None:
        share = sum(f.drifted for f in features) / len(features)
    needed = drift_share - 0.5 / max(len(features), 1)
    detected = bool(dataset_test) if dataset_test is not None else share >= needed
    features.sort(key=lambda f: (not f.drifted, f.name))
    drifted = [f.name for f in features if f.drifted]
    counted = f"{len(drifted)} of {len(features)} features drifted ({share:.0%}"
    if detected:
        message = f"data drift: {counted}, drift from {drift_share:.0%}): " + ", ".join(drifted)
    else:
        message = f"no data drift: {counted}, drift from {drift_share:.0%})"
    return DriftResult(
        status=DRIFT if detected else NO_DRIFT,
        share=share,
        detected=detected,
        features=features,
        message=message,
        **base,
    )


def report_files(result: DriftResult) -> dict[str, str]:
    """The files logged to a run for ``result``: Evidently's JSON (plus our summary) and
    HTML, named by the check's time so successive reports sit side by side."""
    stamp = datetime.fromtimestamp(result.checked_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    files = {f"drift-{stamp}.summary.json": json.dumps(result.summary(), indent=2)}
    if result.report_json is not None:
        files[f"drift-{stamp}.json"] = result.report_json
    if result.report_html is not None:
        files[f"drift-{stamp}.html"] = result.report_html
    return files
