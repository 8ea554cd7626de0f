"""Exception handlers: bad input is a 4xx naming the field; nothing leaks a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from opsline.errors import InvalidRequestError, ModelLoadError, NoModelError
from opsline.serving.batch_errors import ClientDisconnectedError, QueueFullError, ShuttingDownError

log = logging.getLogger("opsline.serving")


# A body that may take several shapes (one feedback item or a list) is a tagged union whose
# tags are written <like-this>; pydantic puts the tag in ``loc``, the client never sees it.
def is_shape_tag(part: object) -> bool:
    """Whether a ``loc`` part is a union tag (``<one>``), not a field name or an index."""
    return isinstance(part, str) and part.startswith("<") and part.endswith(">")


def _error_entry(error: dict[str, Any]) -> dict[str, Any]:
    # The offending ``input`` is left out on purpose: for a 1001-item batch it would echo the
    # whole body back. ``loc`` + ``msg`` + ``type`` say which field and why.
    return {
        "loc": [part for part in error.get("loc", ()) if not is_shape_tag(part)],
        "msg": error.get("msg", ""),
        "type": error.get("type", ""),
    }


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=422,
        content=jsonable_encoder({"detail": [_error_entry(e) for e in exc.errors()]}),
    )


async def invalid_request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequestError)
    # Shaped like FastAPI's own 422 so clients handle schema and model limits alike.
    return JSONResponse(
        status_code=422,
        content={
            "detail": [{"loc": ["body", exc.field], "msg": exc.reason, "type": "value_error"}]
        },
    )


async def no_model_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


async def queue_full(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueueFullError)
    return JSONResponse(
        status_code=503,
        content={"detail": str(exc)},
        headers={"Retry-After": str(exc.retry_after_s)},
    )


async def shutting_down(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": str(exc)},
        headers={"Retry-After": "1", "Connection": "close"},
    )


async def client_disconnected(request: Request, exc: Exception) -> JSONResponse:
    # Nobody reads this: nginx's "client closed request", so logs and metrics can tell it
    # apart from a server failure.
    return JSONResponse(status_code=499, content={"detail": str(exc)})


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500, content={"detail": "Internal server error; the server log has details."}
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(InvalidRequestError, invalid_request_error)
    app.add_exception_handler(NoModelError, no_model_error)
    app.add_exception_handler(ModelLoadError, no_model_error)
    app.add_exception_handler(QueueFullError, queue_full)
    app.add_exception_handler(ShuttingDownError, shutting_down)
    app.add_exception_handler(ClientDisconnectedError, client_disconnected)
    app.add_exception_handler(Exception, unexpected_error)
