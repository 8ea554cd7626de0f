"""Liveness and readiness: ``/health`` says the process answers, ``/ready`` that it can predict."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from opsline.serving.deps import SlotDep
from opsline.serving.openapi import errors

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model: str
    version: str | None


@router.get("/health", response_model=Health, summary="Liveness: the process is up")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Ready,
    summary="Readiness: a model is loaded",
    responses=errors(503, d503="No model loaded; `detail` says why and what to do"),
)
async def ready(slot: SlotDep) -> Ready | JSONResponse:
    if slot.model is None:
        return JSONResponse(
            status_code=503, content={"status": "unavailable", "detail": slot.error}
        )
    return Ready(status="ready", model=slot.model.name, version=slot.model.version)
