"""``POST /predict/stream``: generated text as server-sent events, token by token.

Only for recipes whose predictor can stream (``recipe.streams = True``; the predictor has
``check(request)`` and ``stream(request) -> TextStream``). Same body as ``/predict``. The
events are::

    event: delta   data: {"text": "<new text>"}          (one per decoded piece)
    event: done    data: <the recipe's Response as JSON>  (last; same as /predict's body)

Everything that can be refused is refused *before* the stream starts, as a plain JSON 4xx:
schema errors (FastAPI), a prompt over the context limit (``check`` in a dependency), no
model (503). A client that disconnects mid-stream cancels its generation: Starlette cancels
the response, the generator's ``finally`` cancels the engine row and the ``async with``
returns the concurrency slot.

No ``from __future__ import annotations``: FastAPI reads the endpoint annotations at
runtime and they name a class that only exists inside :func:`build_router`.
"""

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Body, Depends, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from opsline.recipes.base import Recipe
from opsline.serving.deps import LimiterDep, MetricsDep, ModelDep
from opsline.serving.openapi import errors, json_errors_of
from opsline.serving.request_id import row_ids
from opsline.serving.routing import json_route

log = logging.getLogger(__name__)

_END = object()


def build_router(recipe: Recipe, max_body_bytes: int | None = None) -> APIRouter:
    """The streaming route for ``recipe``; an empty router if the recipe does not stream."""
    router = APIRouter(tags=["predict"], route_class=json_route(max_body_bytes))
    if not recipe.streams:
        return router
    RequestModel = recipe.Request

    def checked(
        body: Annotated[RequestModel, Body()],  # type: ignore[valid-type]
        model: ModelDep,
    ) -> tuple[BaseModel, Any]:
        # Runs before the response starts (in the threadpool: a sync dependency), so a request
        # the model cannot serve is a 422 (InvalidRequestError) rather than an error event in
        # a 200 stream; what it prepared (the prompt's tokens) is handed on, not redone.
        return body, model.predictor.check(body)

    @router.post(
        "/predict/stream",
        response_class=EventSourceResponse,
        summary=f"Stream one {recipe.name} generation as server-sent events",
        responses=json_errors_of(
            errors(400, 413, 415, 422, 503, d422="Invalid body or prompt too long")
        ),
    )
    async def predict_stream(
        checked_body: Annotated[tuple[BaseModel, Any], Depends(checked)],
        model: ModelDep,
        metrics: MetricsDep,
        limiter: LimiterDep,
        request: Request,
    ) -> AsyncIterator[ServerSentEvent]:
        request_ids = row_ids(1)
        async with limiter if limiter is not None else contextlib.nullcontext():
            start = time.perf_counter()
            body, prepared = checked_body
            stream = None
            model.inflight += 1  # a hot reload waits for this stream before closing the model
            try:
                stream = model.predictor.stream(body, prepared)
                deltas = iter(stream)
                while True:
                    # The iterator blocks on the engine: wait in a worker thread. Abandoned
                    # on cancellation; cancel() below ends the row, which unblocks it.
                    delta = await anyio.to_thread.run_sync(
                        next, deltas, _END, abandon_on_cancel=True
                    )
                    if delta is _END:
                        break
                    yield ServerSentEvent(event="delta", data={"text": delta})
            except Exception:  # the 200 has been sent: end the stream with a readable event
                log.exception("Streaming generation failed")
                if metrics is not None:
                    metrics.inference_errors.inc()
                yield ServerSentEvent(
                    event="error", data={"detail": "Generation failed; the server log has details."}
                )
                return
            finally:
                model.inflight -= 1
                if stream is not None:  # no-op when finished; frees the row on disconnect
                    stream.cancel()
            seconds = time.perf_counter() - start
            _observe(metrics, stream.response, seconds)
            if stream.response is not None and request.app.state.settings.prediction_log:
                # Logged (committed) before the client gets the final event, as /predict is.
                await anyio.to_thread.run_sync(
                    request.app.state.recorder.record,
                    model,
                    [body],
                    [stream.response],
                    request_ids,
                    [seconds],
                )
            yield ServerSentEvent(event="done", data=stream.response)

    return router


def _observe(metrics: Any, response: Any, seconds: float) -> None:
    """Count a finished stream like a ``/predict`` call in the inference metrics."""
    if metrics is not None and response is not None:
        metrics.observe_inference(seconds, 1)
        metrics.observe_predictions([response])
