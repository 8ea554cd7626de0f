"""The Open Inference Protocol (KServe v2 REST) beside the opsline routes.

Triton's and KServe's clients (``tritonclient.http``, ``kserve``'s ``InferenceRESTClient``)
talk to the served model without knowing opsline::

    GET  /v2                                server metadata
    GET  /v2/health/live | /v2/health/ready liveness, readiness (200 / 503, like /ready)
    GET  /v2/models/{name}[/versions/{v}]   model metadata (tensors from the recipe schemas)
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer

``{name}`` is the served registered model (``house_price``, ``grapevine`` …) and ``{v}`` its
registry version. Tensors are the recipe's fields, one element per row
(:mod:`opsline.serving.oip_schema`); an infer call's N rows become N recipe ``Request``
objects that go through the same batcher as ``/predict``, so OIP traffic is batched, logged
and measured like the rest.

Every error here is the spec's ``{"error": "..."}`` body, not FastAPI's ``detail``: the
route class below turns exceptions into it for these routes only, so the other routes keep
their shape and the app needs no extra handler. Input data is JSON (flat or nested lists);
binary *inputs* (tritonclient's default ``binary_data=True``) are decoded too, but outputs
are always JSON — clients read them either way, so no extension is advertised.

No ``from __future__ import annotations``: FastAPI reads the endpoint annotations at
runtime.
"""

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, ValidationError

from opsline import __version__
from opsline.errors import InvalidRequestError, ModelLoadError, NoModelError
from opsline.recipes.base import Recipe
from opsline.serving import oip_schema
from opsline.serving.batch_errors import ClientDisconnectedError, QueueFullError, ShuttingDownError
from opsline.serving.deps import BatcherDep, SlotDep, wait_for_disconnect
from opsline.serving.oip_schema import TensorError
from opsline.serving.openapi import errors, inline_schema, json_body, sample_requests
from opsline.serving.routing import JSONRoute, json_route
from opsline.serving.runtime import LoadedModel, ModelSlot

log = logging.getLogger(__name__)

_NOT_READY = "No model loaded, the queue is full or the server is shutting down"
_MODEL_ERRORS = errors(
    404, 503, shape="oip", d404="No such model or version is served", d503=_NOT_READY
)
_INFER_ERRORS = errors(
    400,
    404,
    413,
    503,
    shape="oip",
    d400="Bad request: `error` names the tensor (and row)",
    d404="No such model or version is served",
    d503=_NOT_READY,
)


def _infer_body(recipe: Recipe, inputs: tuple[oip_schema.Tensor, ...]) -> dict[str, Any]:
    """The infer route's documented body: the envelope's schema, the recipe's samples as one
    columnar example (rows are the samples; a field a sample leaves out is ``null``)."""
    samples = sample_requests(recipe)
    examples = {"samples": {"inputs": oip_schema.output_tensors(samples, inputs)}}
    return json_body(inline_schema(oip_schema.InferRequest), examples if samples else None)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def _row_error(error: InvalidRequestError) -> str:
    # The batcher names a row of a multi-row call "items.<i>.<field>": say it in tensor terms.
    parts = error.field.split(".")
    if len(parts) >= 3 and parts[0] == "items" and parts[1].isdigit():
        return f"input tensor {'.'.join(parts[2:])!r} row {parts[1]}: {error.reason}"
    return f"input tensor {error.field!r}: {error.reason}"


class OIPRoute(JSONRoute):
    """A route whose failures are answered as ``{"error": "..."}`` (the spec's body); the
    body limit is :class:`JSONRoute`'s, but any content type is read (binary extension)."""

    check_content_type = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except TensorError as error:
                return _error(error.status, error.message)
            except InvalidRequestError as error:  # a row the model refused
                return _error(400, _row_error(error))
            except (NoModelError, ModelLoadError) as error:
                return _error(503, str(error))
            except QueueFullError as error:
                return _error(503, str(error), {"Retry-After": str(error.retry_after_s)})
            except ShuttingDownError as error:
                return _error(503, str(error), {"Retry-After": "1", "Connection": "close"})
            except ClientDisconnectedError as error:  # nobody reads it; 499 for the logs
                return _error(499, str(error))
            except HTTPException as error:  # e.g. 413 from the body-size limit
                return _error(error.status_code, str(error.detail), error.headers)
            except RequestValidationError as error:
                return _error(400, str(error.errors()[:1]))
            except Exception:
                log.exception("OIP %s %s failed", request.method, request.url.path)
                return _error(500, "Internal server error; the server log has details.")

        return route


def _served(slot: ModelSlot, name: str, version: str | None) -> LoadedModel:
    """The served model if ``name`` (and ``version``) designate it; else a 404 / 503."""
    model = slot.model
    if model is None:
        raise TensorError(slot.error or "No model is loaded.", 503)
    if name != model.name:
        raise TensorError(
            f"model {name!r} is not served here; this server serves {model.name!r}", 404
        )
    if version is not None and version != model.version:
        served = f"only version {model.version!r}" if model.version else "an unversioned model"
        raise TensorError(
            f"model {name!r} has no version {version!r} here; it serves {served}", 404
        )
    return model


def build_router(
    recipe: Recipe, max_batch_size: int, max_body_bytes: int | None = None
) -> APIRouter:
    """The ``/v2`` routes for ``recipe``; the tensor mapping is computed here, once."""
    inputs = oip_schema.tensors_of(recipe.Request)
    outputs = oip_schema.tensors_of(recipe.Response)
    input_spec = {tensor.name: tensor for tensor in inputs}
    output_spec = {tensor.name: tensor for tensor in outputs}
    input_meta = [tensor.metadata() for tensor in inputs]
    output_meta = [tensor.metadata() for tensor in outputs]
    # One validation call for all N rows (pydantic-core loops, not Python), errors keep the row.
    rows_adapter: TypeAdapter[list[BaseModel]] = TypeAdapter(list[recipe.Request])  # type: ignore[name-defined]
    server_meta = {"name": "opsline", "version": __version__, "extensions": []}
    infer_body = _infer_body(recipe, inputs)

    router = APIRouter(
        prefix="/v2",
        tags=["open inference protocol"],
        route_class=json_route(max_body_bytes, base=OIPRoute),
    )

    @router.get("", summary="OIP server metadata")
    def server_metadata() -> dict[str, Any]:
        return server_meta

    @router.get("/health/live", summary="OIP liveness")
    def live() -> dict[str, Any]:
        return {"live": True}

    @router.get(
        "/health/ready",
        summary="OIP readiness: a model is loaded (503 if not)",
        responses=errors(503, shape="oip", d503="No model loaded"),
    )
    def ready(slot: SlotDep) -> Any:
        if slot.model is None:
            return JSONResponse(
                status_code=503,
                content={"ready": False, "error": slot.error or "No model is loaded."},
            )
        return {"ready": True}

    def metadata(slot: ModelSlot, name: str, version: str | None) -> dict[str, Any]:
        model = _served(slot, name, version)
        return {
            "name": model.name,
            "versions": [model.version] if model.version else [],
            "platform": f"opsline-{recipe.name}-{model.predictor.backend}",
            "inputs": input_meta,
            "outputs": output_meta,
        }

    @router.get("/models/{model_name}", summary="OIP model metadata", responses=_MODEL_ERRORS)
    def model_metadata(model_name: str, slot: SlotDep) -> dict[str, Any]:
        return metadata(slot, model_name, None)

    @router.get(
        "/models/{model_name}/versions/{model_version}",
        summary="OIP model metadata (one version)",
        responses=_MODEL_ERRORS,
    )
    def version_metadata(model_name: str, model_version: str, slot: SlotDep) -> dict[str, Any]:
        return metadata(slot, model_name, model_version)

    @router.get(
        "/models/{model_name}/ready", summary="OIP model readiness", responses=_MODEL_ERRORS
    )
    def model_ready(model_name: str, slot: SlotDep) -> dict[str, Any]:
        return {"name": _served(slot, model_name, None).name, "ready": True}

    @router.get(
        "/models/{model_name}/versions/{model_version}/ready",
        summary="OIP model readiness (one version)",
        responses=_MODEL_ERRORS,
    )
    def version_ready(model_name: str, model_version: str, slot: SlotDep) -> dict[str, Any]:
        return {"name": _served(slot, model_name, model_version).name, "ready": True}

    async def infer(
        request: Request, slot: ModelSlot, batcher: Any, name: str, version: str | None
    ) -> JSONResponse:
        model = _served(slot, name, version)
        body = oip_schema.parse_request(
            await request.body(), request.headers.get("inference-header-content-length")
        )
        selected = outputs
        if body.outputs:
            unknown = [o.name for o in body.outputs if o.name not in output_spec]
            if unknown:
                raise TensorError(
                    f"unknown output tensor {unknown[0]!r}; this model's outputs "
                    f"are {', '.join(output_spec)}"
                )
            names = dict.fromkeys(o.name for o in body.outputs)  # ordered, no duplicates
            selected = tuple(output_spec[n] for n in names)
        count, values = oip_schema.columns(body, input_spec, max_batch_size)
        try:
            rows = rows_adapter.validate_python(oip_schema.build_rows(count, values, input_spec))
        except ValidationError as error:
            raise TensorError(oip_schema.validation_message(error)) from None
        responses = await batcher.submit(rows, lambda: wait_for_disconnect(request))
        answer: dict[str, Any] = {"model_name": model.name}
        if model.version:
            answer["model_version"] = model.version
        if body.id is not None:
            answer["id"] = body.id
        answer["outputs"] = oip_schema.output_tensors(responses, selected)
        return JSONResponse(answer)

    @router.post(
        "/models/{model_name}/infer",
        summary="OIP inference: one row per element",
        responses=_INFER_ERRORS,
        openapi_extra=infer_body,
    )
    async def model_infer(
        model_name: str, request: Request, slot: SlotDep, batcher: BatcherDep
    ) -> JSONResponse:
        return await infer(request, slot, batcher, model_name, None)

    @router.post(
        "/models/{model_name}/versions/{model_version}/infer",
        summary="OIP inference (one version)",
        responses=_INFER_ERRORS,
        openapi_extra=infer_body,
    )
    async def version_infer(
        model_name: str, model_version: str, request: Request, slot: SlotDep, batcher: BatcherDep
    ) -> JSONResponse:
        return await infer(request, slot, batcher, model_name, model_version)

    return router
