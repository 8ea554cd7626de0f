"""``POST /predict`` and ``POST /predict/batch``, typed by the recipe's schemas.

Recipes with ``accepts_files = True`` (images) get a ``/predict`` that also takes a
multipart upload (field ``image``); see :mod:`opsline.serving.routes.upload`.

No ``from __future__ import annotations`` here on purpose: FastAPI reads the endpoint
annotations at runtime, and they name classes that only exist inside :func:`build_router`.
"""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import ConfigDict, Field, TypeAdapter, create_model

from opsline.recipes.base import Recipe
from opsline.serving.deps import BatcherDep, wait_for_disconnect
from opsline.serving.routes import upload

log = logging.getLogger(__name__)

JSON = "application/json"
_UNAVAILABLE = {
    503: {
        "description": "No model loaded (`detail` says why and what to do), "
        "or the queue is full (`Retry-After` says when to retry)"
    }
}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _examples(recipe: Recipe) -> list[dict[str, Any]]:
    try:  # only for /docs; a recipe without samples must still serve
        return [r.model_dump(mode="json") for r in recipe.sample_requests()]
    except Exception:  # pragma: no cover - defensive
        log.debug("sample_requests() failed; OpenAPI will have no examples", exc_info=True)
        return []


def build_router(
    recipe: Recipe, max_batch_size: int, max_body_bytes: int | None = None
) -> APIRouter:
    """Prediction routes whose bodies are ``recipe.Request`` and ``recipe.Response``."""
    RequestModel = recipe.Request
    ResponseModel = recipe.Response
    prefix = _camel(recipe.name)
    BatchRequest = create_model(
        f"{prefix}BatchRequest",
        __config__=ConfigDict(extra="forbid"),
        items=(
            Annotated[
                list[RequestModel],
                Field(
                    min_length=1,
                    max_length=max_batch_size,
                    description=f"1 to {max_batch_size} requests",
                ),
            ],
            ...,
        ),
    )
    BatchResponse = create_model(
        f"{prefix}BatchResponse",
        items=(list[ResponseModel], Field(description="One response per item, in order")),
    )
    # The predictor already built typed Response objects: serialise them straight to JSON
    # bytes in pydantic-core instead of letting FastAPI validate them again per request
    # (the response_model stays for the OpenAPI schema). Half the cost of a 256-row batch.
    one_json = TypeAdapter(ResponseModel).dump_json
    batch_json = TypeAdapter(BatchResponse).dump_json
    examples = _examples(recipe)
    single_examples = {f"sample_{i}": {"value": e} for i, e in enumerate(examples[:3])}
    batch_examples = {"samples": {"value": {"items": examples}}} if examples else None

    router = APIRouter(tags=["predict"], max_body_size=max_body_bytes)

    if recipe.accepts_files:
        # Its own router without Starlette's limit: the route enforces max_body_bytes while
        # reading, so a too-large upload gets a JSON 413 with the reason (not plain text).
        files_router = APIRouter(tags=["predict"])

        @files_router.post(
            "/predict",
            response_model=ResponseModel,
            responses={**_UNAVAILABLE, **upload.RESPONSES},
            summary=f"Predict one {recipe.name} request (JSON or file upload)",
            openapi_extra=upload.openapi_body(RequestModel, examples),
        )
        async def predict_upload(request: Request, batcher: BatcherDep) -> Response:
            body = await upload.parse_request(request, recipe, max_body_bytes)
            responses = await batcher.submit([body], lambda: wait_for_disconnect(request))
            return Response(one_json(responses[0]), media_type=JSON)
    else:
        files_router = None

        @router.post(
            "/predict",
            response_model=ResponseModel,
            responses=_UNAVAILABLE,
            summary=f"Predict one {recipe.name} request",
        )
        async def predict(
            body: Annotated[RequestModel, Body(openapi_examples=single_examples or None)],
            request: Request,
            batcher: BatcherDep,
        ) -> Response:
            responses = await batcher.submit([body], lambda: wait_for_disconnect(request))
            return Response(one_json(responses[0]), media_type=JSON)

    @router.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses=_UNAVAILABLE,
        summary=f"Predict 1–{max_batch_size} {recipe.name} requests in one call",
    )
    async def predict_batch(
        body: Annotated[BatchRequest, Body(openapi_examples=batch_examples)],
        request: Request,
        batcher: BatcherDep,
    ) -> Response:
        responses = await batcher.submit(
            body.items, lambda: wait_for_disconnect(request), itemized=True
        )
        return Response(batch_json(BatchResponse.model_construct(items=responses)), media_type=JSON)

    if files_router is None:
        return router
    combined = APIRouter()
    combined.include_router(files_router)
    combined.include_router(router)
    return combined
