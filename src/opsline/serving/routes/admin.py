"""``POST /admin/reload``: check the registry alias now and hot-swap a new version.

Protected by the API key like ``/jobs``. The answer is the attempt (also listed under
``reload`` in ``GET /model``): 200 when a new version now serves or nothing changed, 409
when the candidate was refused — the old model keeps serving and ``reason`` says why.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from opsline.serving.auth import ApiKeyDep
from opsline.serving.openapi import errors

router = APIRouter(tags=["admin"])


class ReloadResult(BaseModel):
    at: str
    trigger: str
    outcome: str
    uri: str
    version: str | None = None
    previous: str | None = None
    reason: str
    seconds: float


@router.post(
    "/admin/reload",
    response_model=ReloadResult,
    dependencies=[ApiKeyDep],
    summary="Load the version the registry alias points at now, if it is new",
    responses={
        **errors(401, 422, 503, d503="Admin endpoints are disabled: no OPSLINE_API_KEY"),
        409: {
            "model": ReloadResult,
            "description": "The candidate was refused (load, smoke test "
            "or parity); the old model keeps serving",
        },
    },
)
async def reload(
    request: Request,
    force: bool = Query(False, description="Reload even if the version is the one already serving"),
) -> Any:
    attempt = await request.app.state.reloader.reload("admin", force=force)
    if attempt.outcome == "failed":
        return JSONResponse(status_code=409, content=asdict(attempt))
    return asdict(attempt)
