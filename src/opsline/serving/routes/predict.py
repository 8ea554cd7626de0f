"""``POST /predict`` and ``POST /predict/batch``, typed by the recipe's schemas.

Recipes with ``accepts_files = True`` (images) get a ``/predict`` that also takes a
multipart upload (field ``image``); see :mod:`opsline.serving.routes.upload`.

No ``from __future__ import annotations`` here on purpose: FastAPI reads the endpoint
annotations at runtime, and they name classes that only exist inside :func:`build_router`
(hence the ``type: ignore[valid-type]``: mypy cannot see a class made at runtime as a type).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from opsline.recipes.base import Recipe
from opsline.serving.deps import BatcherDep, wait_for_disconnect
from opsline.serving.openapi import errors, sample_requests
from opsline.serving.routes import upload
from opsline.serving.routing import json_route

JSON = "application/json"
# 422 also for a row the model refuses (e.g. a prompt over the context); 503: no model,
# a full queue or a shutdown (Retry-After).
_ERRORS = errors(400, 413, 415, 422, 503)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _examples(recipe: Recipe) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in sample_requests(recipe)]


def build_router(
    recipe: Recipe, max_batch_size: int, max_body_bytes: int | None = None
) -> APIRouter:
    """Prediction routes whose bodies are ``recipe.Request`` and ``recipe.Response``."""
    RequestModel = recipe.Request
    ResponseModel = recipe.Response
    prefix = _camel(recipe.name)
    items: Any = Annotated[
        list[RequestModel],  # type: ignore[valid-type]
        Field(
            min_length=1, max_length=max_batch_size, description=f"1 to {max_batch_size} requests"
        ),
    ]
    BatchRequest: type[BaseModel] = create_model(
        f"{prefix}BatchRequest",
        __config__=ConfigDict(extra="forbid", strict=True),
        items=(items, ...),
    )
    BatchResponse = create_model(
        f"{prefix}BatchResponse",
        items=(
            list[ResponseModel],  # type: ignore[valid-type]
            Field(description="One response per item, in order"),
        ),
    )
    # The predictor already built typed Response objects: serialise them straight to JSON
    # bytes in pydantic-core instead of letting FastAPI validate them again per request
    # (the response_model stays for the OpenAPI schema). Half the cost of a 256-row batch.
    one_json = TypeAdapter(ResponseModel).dump_json
    batch_json = TypeAdapter(BatchResponse).dump_json
    examples = _examples(recipe)
    single_examples = {f"sample_{i}": {"value": e} for i, e in enumerate(examples[:3])}
    batch = examples[:max_batch_size]  # a documented example must be a valid request
    batch_examples = {"samples": {"value": {"items": batch}}} if batch else None

    router = APIRouter(tags=["predict"], route_class=json_route(max_body_bytes))

    if recipe.accepts_files:
        # Its own router: the route reads the body itself (multipart or JSON), enforcing
        # max_body_bytes while reading, and answers 415 for other media types.
        files_router = APIRouter(tags=["predict"])

        @files_router.post(
            "/predict",
            response_model=ResponseModel,
            responses=_ERRORS,
            summary=f"Predict one {recipe.name} request (JSON or file upload)",
            openapi_extra=upload.openapi_body(RequestModel, examples),
        )
        async def predict_upload(request: Request, batcher: BatcherDep) -> Response:
            body = await upload.parse_request(request, recipe, max_body_bytes)
            responses = await batcher.submit([body], lambda: wait_for_disconnect(request))
            return Response(one_json(responses[0]), media_type=JSON)
    else:

        @router.post(
            "/predict",
            response_model=ResponseModel,
            responses=_ERRORS,
            summary=f"Predict one {recipe.name} request",
        )
        async def predict(
            body: Annotated[RequestModel, Body(openapi_examples=single_examples or None)],  # type: ignore[valid-type]
            request: Request,
            batcher: BatcherDep,
        ) -> Response:
            responses = await batcher.submit([body], lambda: wait_for_disconnect(request))
            return Response(one_json(responses[0]), media_type=JSON)

    @router.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses=_ERRORS,
        summary=f"Predict 1–{max_batch_size} {recipe.name} requests in one call",
    )
    async def predict_batch(
        body: Annotated[BatchRequest, Body(openapi_examples=batch_examples)],  # type: ignore[valid-type]
        request: Request,
        batcher: BatcherDep,
    ) -> Response:
        responses = await batcher.submit(
            body.items,  # type: ignore[attr-defined]
            lambda: wait_for_disconnect(request),
            itemized=True,
        )
        return Response(batch_json(BatchResponse.model_construct(items=responses)), media_type=JSON)

    if not recipe.accepts_files:
        return router
    combined = APIRouter()
    combined.include_router(files_router)
    combined.include_router(router)
    return combined
