"""Request parsing for recipes whose ``/predict`` takes a file: multipart upload or JSON.

``parse_request`` reads the body itself with :func:`opsline.serving.routing.read_limited`,
so a body over ``max_body_bytes`` is refused with a JSON 413 that says the limit. Then:

* ``multipart/form-data`` — the file in field ``image`` (other text fields, e.g. ``top_k``,
  are passed along) goes to ``recipe.request_from_upload``;
* JSON — validated against ``recipe.Request`` (e.g. ``{"image": "<base64>", "top_k": 3}``).

Validation runs in a worker thread (decoding an image is CPU work). Its errors become a
422 naming the field (``["body", "image"]``) and the reason — or a 415 when the only
problem is an unsupported media type (error type ``unsupported_media_type``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from opsline.serving.routing import is_json, read_limited

FILE_FIELD = "image"
UNSUPPORTED = "unsupported_media_type"


def openapi_body(request_model: type[BaseModel], examples: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI request body: JSON (the recipe's schema) or a multipart file upload."""
    json_schema: dict[str, Any] = {
        "schema": {"$ref": f"#/components/schemas/{request_model.__name__}"}
    }
    if examples:
        json_schema["examples"] = {f"sample_{i}": {"value": e} for i, e in enumerate(examples[:1])}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": json_schema,
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [FILE_FIELD],
                        "properties": {
                            FILE_FIELD: {"type": "string", "format": "binary"},
                            "top_k": {"type": "integer", "minimum": 1},
                        },
                    }
                },
            },
        }
    }


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


def _invalid(loc: tuple[Any, ...], msg: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": msg, "type": kind}])


async def _multipart(request: Request, body: bytes, recipe: Any) -> partial[BaseModel]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    parser = MultiPartParser(request.headers, _once(body), max_files=1, max_fields=20)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise _invalid(("body",), f"malformed multipart body: {error}", "multipart") from None
    upload = form.get(FILE_FIELD)
    if not isinstance(upload, UploadFile):
        raise _invalid(
            ("body", FILE_FIELD),
            f"a file is required in the multipart field {FILE_FIELD!r}",
            "missing",
        )
    data = await upload.read()
    fields = {k: v for k, v in form.multi_items() if k != FILE_FIELD and isinstance(v, str)}
    await form.close()
    return partial(recipe.request_from_upload, upload.filename, upload.content_type, data, fields)


async def parse_request(request: Request, recipe: Any, max_body_bytes: int | None) -> BaseModel:
    """The validated ``recipe.Request`` for a JSON or multipart ``/predict`` call."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_limited(request, max_body_bytes)
    if content_type == "multipart/form-data":
        build = await _multipart(request, body, recipe)
    elif content_type == "" or is_json(content_type):
        try:
            payload = json.loads(body)
        except ValueError as error:
            raise _invalid(("body",), f"JSON decode error: {error}", "json_invalid") from None
        build = partial(recipe.Request.model_validate, payload)
    else:
        raise HTTPException(
            415,
            detail=f"Unsupported content type {content_type!r}: send "
            f"multipart/form-data with the file in field "
            f"{FILE_FIELD!r}, or JSON.",
        )
    try:
        return await anyio.to_thread.run_sync(build)
    except ValidationError as error:
        errors = [
            {"loc": ("body", *e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
    if errors and all(e["type"] == UNSUPPORTED for e in errors):
        raise HTTPException(415, detail=[{**e, "loc": list(e["loc"])} for e in errors])
    raise RequestValidationError(errors)
