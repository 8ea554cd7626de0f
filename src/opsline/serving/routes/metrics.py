"""``GET /metrics`` in the Prometheus text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Response

from opsline.monitoring.metrics import CONTENT_TYPE
from opsline.serving.deps import MetricsDep

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response, include_in_schema=True
)
def metrics(collectors: MetricsDep) -> Response:
    return Response(content=collectors.render(), media_type=CONTENT_TYPE)
