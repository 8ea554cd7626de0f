"""``GET /drift`` (the latest drift check) and ``GET /drift/report`` (its Evidently HTML).

The checks run in :class:`~opsline.serving.drift_monitor.DriftMonitor`, off the request
path; these routes only read its latest result. ``?refresh=true`` (or no check yet) runs one
now — concurrent callers share it. ``status`` says whether there is a verdict (``drift``,
``no_drift``) or why not (``not_enough_data``, ``no_reference``, ``no_model``, ``error``),
and ``message`` says it in one sentence.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from opsline.serving.openapi import errors, json_errors_of

router = APIRouter(tags=["monitoring"])


class FeatureDriftOut(BaseModel):
    name: str
    method: str
    score: float
    threshold: float
    drifted: bool


class DriftSummary(BaseModel):
    status: str
    message: str
    detected: bool
    share: float | None = None
    drift_share: float | None = Field(
        None,
        description="Drift from this share of features; null before a verdict when "
        "it is the automatic rule (it depends on how many were tested)",
    )
    rows: int
    min_rows: int
    reference_rows: int
    window: str | None = None
    model: str | None = None
    version: str | None = None
    checked_at: str
    seconds: float
    features: list[FeatureDriftOut]
    drifted_features: list[str]
    skipped: list[str]
    has_report: bool
    logged_to: str | None = None


_REFRESH = Query(False, description="Run a check now instead of answering the latest one")


@router.get(
    "/drift",
    response_model=DriftSummary,
    summary="Data drift of logged requests against the model's reference",
    responses=errors(422),
)
async def drift(request: Request, refresh: bool = _REFRESH) -> Any:
    monitor = request.app.state.drift
    result = await (monitor.check_now() if refresh else monitor.latest_or_check())
    return result.summary()


@router.get(
    "/drift/report",
    response_class=HTMLResponse,
    summary="The latest drift check's Evidently report (HTML)",
    responses=json_errors_of(
        errors(
            409,
            422,
            d409="The latest check has no report (not enough data, no reference, no model); "
            "`detail` says why",
        )
    ),
)
async def drift_report(request: Request, refresh: bool = _REFRESH) -> Any:
    monitor = request.app.state.drift
    result = await (monitor.check_now() if refresh else monitor.latest_or_check())
    if result.report_html is None:
        return JSONResponse(
            status_code=409,
            content={"detail": f"No drift report: {result.message}.", "status": result.status},
        )
    return HTMLResponse(result.report_html)
