"""Live quality: the served model's predictions scored against the feedback received.

Computed off the request path — after a ``POST /feedback`` and on the drift monitor's
schedule — over the newest ``OPSLINE_QUALITY_WINDOW`` labelled predictions of the served
model, with the recipe's own metric (:meth:`Recipe.live_quality`: house-price RMSLE and
share within ±10 %, classification accuracy). The result is ``opsline_live_quality{metric}``
in ``/metrics``, the ``quality`` block of ``GET /model`` and a figure on ``/ui/monitor``;
the retrain policy reads it too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from opsline.monitoring.metrics import ServingMetrics
    from opsline.monitoring.prediction_log import PredictionLog
    from opsline.recipes.base import Recipe

log = logging.getLogger(__name__)


@dataclass
class LiveQuality:
    """The latest live-quality figures (empty ``metrics`` until feedback arrives)."""

    model: str | None = None
    version: str | None = None
    rows: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    at: float | None = None

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def compute(
    recipe: Recipe,
    prediction_log: PredictionLog,
    model: str,
    window: int,
    version: str | None = None,
) -> LiveQuality:
    """Score the newest ``window`` labelled predictions of ``model`` with the recipe —
    of the served ``version`` only, when given: a retrained version starts with a clean
    slate instead of carrying the error of the one it replaced."""
    import orjson

    labelled = prediction_log.labelled(model, last=window, version=version)
    predictions = [orjson.loads(row.prediction) for row in labelled]
    metrics = recipe.live_quality(predictions, [row.actual for row in labelled]) if labelled else {}
    return LiveQuality(
        model, version, len(labelled), {k: float(v) for k, v in metrics.items()}, time.time()
    )


def publish(quality: LiveQuality, metrics: ServingMetrics | None) -> None:
    """Mirror ``quality`` in the Prometheus gauges."""
    if metrics is None:
        return
    metrics.live_quality.clear()
    for name, value in quality.metrics.items():
        metrics.live_quality.labels(metric=name).set(value)
    metrics.live_quality_rows.set(quality.rows)
