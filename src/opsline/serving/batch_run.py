"""Running one batch, in the batcher's thread: one ``predict`` call, rows retried on failure.

A batch is one ``predictor.predict(list)`` call. If it raises, its rows are retried one by
one, so a bad row gets its own error and its neighbours still get their answers. Then the
hooks run (the prediction log commits here, shadow scoring queues), before any row is
answered; a failing hook is logged and never costs a client its answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from opsline.monitoring.metrics import ServingMetrics
    from opsline.serving.runtime import LoadedModel

log = logging.getLogger("opsline.serving.batcher")


@dataclass
class BatchOutcome:
    """What one batch produced, for hooks (prediction log, shadow scoring)."""

    model: LoadedModel
    requests: list[BaseModel]
    results: list[Any]  # a response, or the exception that row raised
    seconds: float  # the predict call(s)
    request_ids: list[str]  # per row: the log id (see ``serving.request_id``)
    latencies: list[float]  # per row: seconds from queued to answered


Hook = Callable[[BatchOutcome], None]


def predict_rows(
    model: LoadedModel, requests: list[BaseModel], metrics: ServingMetrics | None
) -> list[Any]:
    """One response per request, or the exception that request raised.

    One call for the whole batch; if it fails, each row alone, to find the culprit(s).
    """
    from opsline.serving.runtime import predict_sync

    try:
        return list(predict_sync(model, requests, metrics))
    except Exception as error:  # noqa: BLE001 (recipe code: retry rows one by one below)
        if len(requests) == 1:
            return [error]
    results: list[Any] = []
    for request in requests:
        try:
            results.extend(predict_sync(model, [request], metrics))
        except Exception as row_error:  # noqa: BLE001 (only this row fails)
            results.append(row_error)
    return results


def run_batch(
    model: LoadedModel,
    requests: list[BaseModel],
    ids: list[str],
    queued: Sequence[float],
    hooks: Sequence[Hook],
    metrics: ServingMetrics | None,
) -> list[Any]:
    """Responses (or per-row exceptions) for ``requests``, after every hook has run.

    Args:
        model: the model the batch started with (a reload swaps only between batches).
        requests: the rows, in order.
        ids: each row's log id.
        queued: each row's ``perf_counter`` time of arrival (for its latency).
        hooks: called once with the :class:`BatchOutcome`, before any row is answered.
        metrics: the app's collectors, if any.
    """
    started = time.perf_counter()
    results = predict_rows(model, requests, metrics)
    done = time.perf_counter()
    outcome = BatchOutcome(
        model, requests, results, done - started, ids, [done - q for q in queued]
    )
    for hook in hooks:
        try:
            hook(outcome)
        except Exception:  # a hook (log, shadow) must never cost a client its answer
            log.exception("Batch hook %r failed", hook)
    return results
