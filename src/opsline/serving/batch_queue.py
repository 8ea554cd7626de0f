"""The batcher's queue of rows: one row per request item, grouped by the predictor's key.

Rows whose ``predictor.batch_key`` differ never share a batch (translation: decoding
options); the oldest row's group goes first, so no group starves. A row whose client went
away has a cancelled future and is skipped.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel


@dataclass(eq=False)
class Row:
    """One queued request item and the future its answer goes to."""

    request: BaseModel
    future: asyncio.Future[Any]
    key: Hashable
    request_id: str
    queued_at: float = field(default_factory=time.perf_counter)


Queue = collections.deque[Row]


def take_group(queue: Queue, limit: int) -> tuple[list[Row], Queue]:
    """Up to ``limit`` live rows sharing the oldest row's key, in arrival order, and the
    queue of the rows left (``queue`` itself when only its head was taken)."""
    drop_cancelled(queue)
    if not queue:
        return [], queue
    key = queue[0].key
    if all(row.key == key for row in queue):  # the common case: one group
        batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
        rest = queue
    else:
        batch, rest = [], Queue()
        for row in queue:
            (batch if row.key == key and len(batch) < limit else rest).append(row)
    return [row for row in batch if not row.future.cancelled()], rest


def drop_cancelled(queue: Queue) -> None:
    """Drop the rows at the head whose clients went away."""
    while queue and queue[0].future.cancelled():
        queue.popleft()


def fail_all(queue: Queue, error: Exception) -> None:
    """Empty ``queue``, failing every row still waiting with ``error``."""
    while queue:
        row = queue.popleft()
        if not row.future.done():
            row.future.set_exception(error)
