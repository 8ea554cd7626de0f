"""Primary vs shadow: how often a candidate agrees with the served model, and who is right.

The server with ``OPSLINE_SHADOW_MODEL_URI`` logs the candidate's answer to every request it
scored as a ``role="shadow"`` row beside the served model's (``opsline.serving.shadow``).
:func:`compare` joins the two by request id (:meth:`PredictionLog.pairs`) and reports:

* **agreement**, by the kind of answer:

  - a label (classification: the response's ``predicted`` labels, or ``label``): share of
    requests where both models predicted the same label(s);
  - a number (the recipe takes numeric feedback and the responses carry a
    ``predicted_value``, e.g. a house price): share of requests where the shadow's value is
    within ±10 % of the primary's, plus the median absolute relative difference;
  - anything else (a translation, generated text): share of identical responses (JSON);

* **quality**, where feedback exists: :meth:`Recipe.live_quality` of each model on the same
  labelled requests, so the two figures are comparable.

:meth:`PredictionLog.shadow_count` is what a promotion gate asks: how many requests a
candidate version has been compared on.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from opsline.errors import OpslineError

if TYPE_CHECKING:  # pragma: no cover
    from opsline.monitoring.prediction_log import PredictionLog
    from opsline.recipes.base import Recipe

TOLERANCE = 0.10  # "agree" for numbers: within ±10 % of the primary's value
LABEL, VALUE, IDENTICAL = "label", "value", "identical"
RULES = {
    LABEL: "same predicted label(s)",
    VALUE: f"shadow's predicted value within ±{TOLERANCE * 100:g} % of the primary's",
    IDENTICAL: "identical responses",
}


class NothingToCompareError(OpslineError):
    """No request was answered by both models in the window (no shadow ran): the CLI
    exits 2 with the message, like the other "cannot answer" cases."""

    exit_code = 2


@dataclass
class Comparison:
    """What :func:`compare` found (``asdict``-able, JSON-ready: no NaN/inf)."""

    model: str
    compared: int  # requests answered by both models in the window
    primary_versions: list[str | None] = field(default_factory=list)
    shadow_versions: list[str | None] = field(default_factory=list)
    rule: str | None = None  # label | value | identical
    rule_text: str | None = None  # the rule in words, for people
    agreement: float | None = None  # share of compared requests that agree (0..1)
    agreeing: int = 0
    median_relative_difference: float | None = None  # numbers only: |s - p| / |p|
    labelled: int = 0  # compared requests with feedback
    quality: dict[str, dict[str, float]] = field(default_factory=dict)  # primary / shadow
    first_ts: float | None = None
    last_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few readable lines (the CLI prints them)."""
        if not self.compared:
            return f"No request of {self.model} was answered by both models in the window."
        lines = [
            (
                f"{self.model}: {self.compared} requests answered by both models "
                f"(primary version {_versions(self.primary_versions)}, "
                f"shadow version {_versions(self.shadow_versions)})."
            )
        ]
        line = (
            f"Agreement: {self.agreement:.1%} ({self.agreeing} of {self.compared}) — "
            f"{self.rule_text}."
        )
        if self.median_relative_difference is not None:
            line += f" Median relative difference {self.median_relative_difference:.1%}."
        lines.append(line)
        if self.labelled and self.quality:
            names = sorted(
                set(self.quality.get("primary", {})) | set(self.quality.get("shadow", {}))
            )
            figures = "; ".join(
                f"{name} primary {_num(self.quality['primary'].get(name))}, "
                f"shadow {_num(self.quality['shadow'].get(name))}"
                for name in names
            )
            lines.append(f"On the {self.labelled} with feedback: {figures}.")
        else:
            lines.append("No feedback on these requests yet: no error to compare (POST /feedback).")
        return "\n".join(lines)


def compare(
    prediction_log: PredictionLog,
    model: str,
    recipe: Recipe,
    *,
    last: int | None = None,
    since: float | None = None,
) -> Comparison:
    """Compare the primary's and the shadow's answers logged for ``model``.

    Args:
        prediction_log: the log both models wrote to.
        model: the served model's registered name (the log's ``model`` column).
        recipe: scores each model's labelled predictions (``live_quality``) and says whether
            answers are numbers (``feedback_type``).
        last: only the newest ``last`` compared requests.
        since: only requests the shadow answered since this unix time.
    """
    import orjson

    pairs = prediction_log.pairs(model, last=last, since=since)
    result = Comparison(model=model, compared=len(pairs))
    if not pairs:
        return result
    result.primary_versions = _distinct(p["primary_version"] for p in pairs)
    result.shadow_versions = _distinct(p["shadow_version"] for p in pairs)
    result.first_ts, result.last_ts = pairs[0]["ts"], pairs[-1]["ts"]
    primary = [orjson.loads(p["primary_prediction"]) for p in pairs]
    shadow = [orjson.loads(p["shadow_prediction"]) for p in pairs]
    result.rule = _rule(recipe, pairs, primary)
    result.rule_text = RULES[result.rule]
    if result.rule == VALUE:
        differences = [_relative(p["primary_value"], p["shadow_value"]) for p in pairs]
        agree = [d <= TOLERANCE + 1e-12 for d in differences]
        result.median_relative_difference = _finite(statistics.median(differences))
    elif result.rule == LABEL:
        agree = [_label(a) == _label(b) for a, b in zip(primary, shadow, strict=True)]
    else:
        agree = [a == b for a, b in zip(primary, shadow, strict=True)]
    result.agreeing = sum(agree)
    result.agreement = result.agreeing / len(pairs)
    labelled = [i for i, p in enumerate(pairs) if p["actual"] is not None]
    result.labelled = len(labelled)
    if labelled:
        actuals = [pairs[i]["actual"] for i in labelled]
        result.quality = {
            "primary": _scores(recipe, [primary[i] for i in labelled], actuals),
            "shadow": _scores(recipe, [shadow[i] for i in labelled], actuals),
        }
    return result


# -- helpers ------------------------------------------------------------------------------------
def _rule(recipe: Recipe, pairs: list[dict[str, Any]], primary: list[Any]) -> str:
    if all(_label(p) is not None for p in primary):
        return LABEL
    numeric = recipe.feedback_type in (int, float)
    if numeric and all(
        p["primary_value"] is not None and p["shadow_value"] is not None for p in pairs
    ):
        return VALUE
    return IDENTICAL


def _label(response: Any) -> Any:
    """The predicted label(s) of a classification response, else ``None``."""
    if not isinstance(response, dict):
        return None
    predicted = response.get("predicted")
    if isinstance(predicted, list) and all(isinstance(x, str) for x in predicted):
        return tuple(sorted(predicted))  # multi-label: the same set, in any order
    label = response.get("label")
    return label if isinstance(label, (str, int)) and not isinstance(label, bool) else None


def _relative(primary: float, shadow: float) -> float:
    if primary == 0:
        return 0.0 if shadow == 0 else math.inf
    return abs(shadow - primary) / abs(primary)


def _scores(recipe: Recipe, predictions: list[Any], actuals: list[Any]) -> dict[str, float]:
    metrics = recipe.live_quality(predictions, actuals)
    return {
        name: value for name, raw in metrics.items() if (value := _finite(float(raw))) is not None
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _distinct(values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


def _versions(versions: list[str | None]) -> str:
    return ", ".join(v if v is not None else "(unversioned)" for v in versions) or "?"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
