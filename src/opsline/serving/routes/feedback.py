"""``POST /feedback``: the ground truth for logged predictions.

Body: ``{"request_id": "...", "actual": ...}`` or a list of them (up to 1,000). The id is
the ``X-Request-ID`` a prediction was answered with (``<id>/<i>`` for item ``i`` of a batch);
``actual`` has the recipe's ``feedback_type`` (a sale price, a class label), strictly: a
string is not a number, a boolean is neither.

* All or nothing: if any id was never logged the answer is 404 naming those ids, and
  nothing is stored (a client can fix the list and resend it whole).
* A second feedback for the same id **replaces** the first (200, ``"status": "updated"``):
  ground truth gets corrected (a sale price revised, a label fixed), and a client retrying
  after a timeout must not get an error for a write that did happen.

Protected by the API key like ``/jobs`` (feedback changes what the loop retrains on). Only
recipes with a ``feedback_type`` get the route. After storing, the live quality is
recomputed (off the prediction path).
"""

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Body, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from opsline.recipes.base import Recipe
from opsline.serving.auth import ApiKeyDep
from opsline.serving.openapi import errors
from opsline.serving.routing import json_route

MAX_ITEMS = 1000


class FeedbackStatus(BaseModel):
    request_id: str
    status: Literal["created", "updated"]


class FeedbackResult(BaseModel):
    stored: int = Field(description="Items stored (created + updated)")
    created: int
    updated: int
    items: list[FeedbackStatus]
    quality: dict[str, float] = Field(description="Live quality after this feedback")


def _shape(body: Any) -> str:
    return "<many>" if isinstance(body, list) else "<one>"


def build_router(recipe: Recipe, max_body_bytes: int | None = None) -> APIRouter:
    """The feedback route for ``recipe`` (empty router when it takes no feedback)."""
    router = APIRouter(tags=["monitoring"], route_class=json_route(max_body_bytes))
    if recipe.feedback_type is None:
        return router
    actual_type = recipe.feedback_type
    actual_field: Any = (
        Annotated[float, Field(allow_inf_nan=False)] if actual_type is float else actual_type
    )
    Item: type[BaseModel] = create_model(
        "Feedback",
        __config__=ConfigDict(extra="forbid", strict=True),
        request_id=(
            str,
            Field(
                min_length=1,
                max_length=200,
                description="The X-Request-ID the prediction was answered "
                "with (`<id>/<i>` for batch item i)",
            ),
        ),
        actual=(actual_field, Field(description="The true outcome")),
    )
    example = {
        "request_id": "3f2a9c0e5b7d4e1f8a6b2c4d0e9f1a7b",
        "actual": 181500.0 if actual_type is float else "label",
    }

    # One item or a list, told apart by the JSON type before validating: a wrong `actual`
    # is then one error at body.actual (or body.<i>.actual), not one per union member.
    # The <tags> are dropped from `loc` by the 422 handler (serving.errors).
    OneOrMany: Any = Annotated[
        Annotated[Item, Tag("<one>")]
        | Annotated[
            list[Item],  # type: ignore[valid-type]
            Field(min_length=1, max_length=MAX_ITEMS),
            Tag("<many>"),
        ],
        Discriminator(_shape),
    ]

    @router.post(
        "/feedback",
        response_model=FeedbackResult,
        dependencies=[ApiKeyDep],
        summary="Store the true outcome of logged predictions",
        responses=errors(
            400,
            401,
            404,
            413,
            415,
            422,
            503,
            d404="A request id was never logged; nothing was stored",
            d503="No API key configured, or the prediction log is unavailable",
        ),
    )
    async def feedback(
        request: Request,
        body: Annotated[
            OneOrMany,
            Body(openapi_examples={"one": {"value": example}, "several": {"value": [example]}}),
        ],
    ) -> Any:
        items = body if isinstance(body, list) else [body]
        state = request.app.state
        prediction_log = state.recorder.log
        if prediction_log is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="The prediction log is unavailable: "
                f"{state.recorder.last_error or 'disabled'}.",
            )
        pairs = [(item.request_id, item.actual) for item in items]
        unknown = await anyio.to_thread.run_sync(prediction_log.unknown_ids, [p[0] for p in pairs])
        if unknown:
            shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                detail=f"No logged prediction has request id(s) {shown}; nothing was stored.",
            )
        updated = await anyio.to_thread.run_sync(prediction_log.add_feedback, pairs)
        for was_update in updated:
            state.metrics.feedback.labels(outcome="updated" if was_update else "created").inc()
        quality = await state.refresh_quality()
        return FeedbackResult(
            stored=len(items),
            created=updated.count(False),
            updated=updated.count(True),
            items=[
                FeedbackStatus(request_id=rid, status="updated" if u else "created")
                for (rid, _), u in zip(pairs, updated, strict=True)
            ],
            quality=quality.metrics,
        )

    return router
