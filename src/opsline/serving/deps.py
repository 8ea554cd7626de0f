"""Request dependencies as ``Annotated`` aliases: routes declare what they need by type.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its threadpool,
and a thread round trip per request just to read ``app.state`` costs more than the model
call on a fast tabular model.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from opsline.monitoring.metrics import ServingMetrics
from opsline.recipes.base import Recipe
from opsline.serving.batcher import Batcher
from opsline.serving.runtime import LoadedModel, ModelSlot
from opsline.serving.settings import ServingSettings


# app.state is untyped (Any): each getter names the type it holds.
async def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


async def get_recipe(request: Request) -> Recipe:
    recipe: Recipe = request.app.state.recipe
    return recipe


async def get_metrics(request: Request) -> ServingMetrics:
    metrics: ServingMetrics = request.app.state.metrics
    return metrics


async def get_slot(request: Request) -> ModelSlot:
    slot: ModelSlot = request.app.state.model
    return slot


async def get_limiter(request: Request) -> Any:
    return request.app.state.inference_limiter


async def get_batcher(request: Request) -> Batcher:
    batcher: Batcher = request.app.state.batcher
    return batcher


async def wait_for_disconnect(request: Request) -> None:
    """Return when the client closes the connection (the body has been read by then, so
    the next ASGI message can only be ``http.disconnect``)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def require_model(slot: Annotated[ModelSlot, Depends(get_slot)]) -> LoadedModel:
    """The loaded model, or 503 with the reason there is none (and how to fix it)."""
    if slot.model is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=slot.error or "No model is loaded."
        )
    return slot.model


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
RecipeDep = Annotated[Recipe, Depends(get_recipe)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]
SlotDep = Annotated[ModelSlot, Depends(get_slot)]
ModelDep = Annotated[LoadedModel, Depends(require_model)]
LimiterDep = Annotated[Any, Depends(get_limiter)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
