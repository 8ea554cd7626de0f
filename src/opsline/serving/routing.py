"""A route class for JSON bodies: a JSON 413 over the size limit, a 415 for a non-JSON body.

FastAPI alone answers a body sent as ``text/plain`` (or with no content type) with a 422
"Input should be a valid dictionary", and Starlette's body limit with a plain-text 413 (it
replaces any response once the declared length is over). :func:`json_route` makes a route
class that checks both before FastAPI parses the body, so every refusal is the documented
JSON error. The body is read once, counting bytes; FastAPI then reads it from the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_json(content_type: str) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_limited(request: Request, limit: int | None) -> bytes:
    """The request body, refused with a JSON 413 as soon as it is over ``limit`` bytes."""

    def too_large(size: str) -> HTTPException:
        assert limit is not None
        return HTTPException(
            413, detail=f"The request body is {size}; the limit is {_size(limit, exact=True)}."
        )

    declared = request.headers.get("content-length", "")
    if limit is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(_size(int(declared)))
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if limit is not None and total > limit:
            raise too_large(f"over {_size(limit)}")
        chunks.append(chunk)
    body = b"".join(chunks)
    # Starlette's own cache of the body: FastAPI's `await request.body()` returns it.
    request._body = body
    return body


def _size(count: int, *, exact: bool = False) -> str:
    if count < 1_000_000:
        return f"{count:,} bytes"
    return f"{count / 1e6:.0f} MB" + (f" ({count:,} bytes)" if exact else "")


class JSONRoute(APIRoute):
    """Routes whose body is JSON (see the module docstring); ``max_body_bytes`` per class."""

    max_body_bytes: ClassVar[int | None] = None
    # False for routes that take other media too (the image upload reads its own body).
    check_content_type: ClassVar[bool] = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not (self.methods or set()) & _BODY_METHODS:
            return handler
        limit = self.max_body_bytes
        json_only = self.check_content_type and self.body_field is not None

        async def route(request: Request) -> Response:
            body = await read_limited(request, limit)
            if json_only and body:
                content_type = request.headers.get("content-type", "")
                if not is_json(content_type):
                    raise HTTPException(
                        415,
                        detail=f"The body must be JSON (Content-Type: application/json), "
                        f"not {content_type or 'untyped'}.",
                    )
            return await handler(request)

        return route


def json_route(max_body_bytes: int | None, *, base: type[JSONRoute] = JSONRoute) -> type[Any]:
    """A :class:`JSONRoute` subclass refusing bodies over ``max_body_bytes`` (``None`` = no
    limit); ``base`` lets a route class with its own error shape (OIP) share the checks."""
    return type(base.__name__, (base,), {"max_body_bytes": max_body_bytes})
