"""The error shapes and status codes every route documents, in one place.

A route lists the codes it can really answer with ``responses=errors(401, 404, ...)``; each
code gets a standard description (a route may say more for its own case) and the JSON body
as a component schema: ``{"detail": "..."}`` or, for a refused field, ``{"detail": [{"loc":
[...], "msg": ..., "type": ...}]}`` (:class:`ErrorResponse`). The Open Inference Protocol's
routes answer the spec's ``{"error": "..."}`` instead (:class:`OIPError`, ``shape="oip"``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # pragma: no cover
    from opsline.recipes.base import Recipe

log = logging.getLogger(__name__)

Responses = dict[int | str, dict[str, Any]]


class FieldError(BaseModel):
    """One refused field: where (``loc``), why (``msg``) and a machine-readable ``type``."""

    loc: list[str | int] = Field(description='Where: ["body", "items", 3, "gr_liv_area"]')
    msg: str = Field(description="Why, in one sentence")
    type: str = Field(description="pydantic's error type, e.g. float_type, missing")


class ErrorResponse(BaseModel):
    """The body of every opsline 4xx/5xx outside the Open Inference Protocol."""

    detail: str | list[FieldError] = Field(
        description="What went wrong: a sentence, or the refused fields"
    )


class OIPError(BaseModel):
    """The Open Inference Protocol's error body."""

    error: str = Field(description="What went wrong, naming the tensor (and row)")


DESCRIPTIONS: dict[int, str] = {
    400: "The body is not parseable (not JSON, not UTF-8)",
    401: "Missing or wrong API key (`X-API-Key` or `Authorization: Bearer`)",
    404: "Not found; `detail` says what",
    409: "Conflict; `detail` says why",
    413: "The body is larger than the server's limit (OPSLINE_MAX_BODY_BYTES)",
    415: "The body is not JSON (send `Content-Type: application/json`)",
    422: "A field is refused: `loc` names it, `msg` says why",
    429: "Too many jobs queued or running (OPSLINE_MAX_JOBS); `Retry-After` says when",
    503: "No model loaded, the queue is full or the server is shutting down; `detail` says "
    "which and `Retry-After` when to retry",
}
# Codes answered with a Retry-After header.
_RETRY_AFTER = {429, 503}


def errors(
    *codes: int, shape: Literal["opsline", "oip"] = "opsline", **descriptions: str
) -> Responses:
    """The ``responses=`` of a route that can answer ``codes``.

    Args:
        codes: the HTTP status codes the route really returns besides its success.
        shape: ``"oip"`` for the Open Inference Protocol's ``{"error": ...}`` body.
        descriptions: a route's own wording, by code (``d503="..."``).

    Returns:
        The mapping FastAPI's ``responses=`` takes, each code with the JSON error model.
    """
    model = OIPError if shape == "oip" else ErrorResponse
    out: Responses = {}
    for code in codes:
        entry: dict[str, Any] = {
            "model": model,
            "description": descriptions.get(f"d{code}", DESCRIPTIONS[code]),
        }
        if code in _RETRY_AFTER:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            }
        out[code] = entry
    return out


def json_errors_of(responses: Responses) -> Responses:
    """``responses`` for a route whose success is not JSON (an HTML page, an event stream):
    FastAPI would document a ``model`` under the route's media type, but errors are JSON.
    The referenced component is registered by the other routes' :func:`errors`."""
    out: Responses = {}
    for code, entry in responses.items():
        entry = dict(entry)
        model = entry.pop("model")
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        entry["content"] = {"application/json": {"schema": ref}}
        out[code] = entry
    return out


def sample_requests(recipe: Recipe) -> list[BaseModel]:
    """The recipe's sample requests, the documented examples; none if it cannot give them
    (they are only for ``/docs``: a recipe without samples must still serve)."""
    try:
        return list(recipe.sample_requests())
    except Exception:  # pragma: no cover - defensive
        log.debug("sample_requests() failed; OpenAPI will have no examples", exc_info=True)
        return []


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined, for an ``openapi_extra`` body (a
    ``#/$defs/...`` reference would not resolve inside the OpenAPI document)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def json_body(schema: dict[str, Any], examples: dict[str, Any] | None) -> dict[str, Any]:
    """An ``openapi_extra`` request body: JSON with ``schema`` and named example values."""
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}
