"""``GET /metrics/history``: the recent series the monitoring page charts, as JSON.

For users without a browser (``curl``, a notebook) and for tests; the figures are the ones
of :class:`opsline.monitoring.history.MetricsHistory`, sampled in the background.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from opsline.serving.openapi import errors

router = APIRouter(tags=["monitoring"])


@router.get("/metrics/history", summary="Recent metrics history (JSON)", responses=errors(422))
def history(
    request: Request,
    last: Annotated[
        int | None, Query(ge=1, le=100_000, description="Only the newest N points")
    ] = None,
) -> dict[str, Any]:
    """Headline figures (``latest``) and the buffered points, oldest first.

    Each point has ``time`` (Unix seconds), request rate and error % (API routes; the UI
    mount and the metrics endpoints are left out), p50/p95 latency overall and per route,
    inference p95, predictions/s, tokens/s, ``system`` gauges and ``training`` per model.
    Rates and quantiles describe the interval before the point; ``null`` means no data.
    """
    sampler = request.app.state.history
    return {
        "interval_seconds": sampler.interval,
        "capacity": sampler.capacity,
        "latest": sampler.latest(),
        "points": sampler.points(last),
    }
