"""The submitting side of the batcher: wait for a call's rows, watch for a disconnect.

A request's rows are futures the worker resolves. Waiting is cheap on the fast path: only
a call not answered within :data:`DISCONNECT_WATCH_AFTER_S` starts a task watching for the
client to go away (then its rows are dropped from the queue). The answers are unwrapped in
order; the first failing row fails the call, named by its index when the call had several.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opsline.errors import InvalidRequestError
from opsline.serving.batch_errors import ClientDisconnectedError

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

# A submit whose rows are not answered within this long starts watching for a client
# disconnect; the fast path (answered sooner) never pays for the watcher task.
DISCONNECT_WATCH_AFTER_S = 0.05


async def wait_for_answers(
    futures: list[asyncio.Future[Any]], disconnected: Callable[[], Awaitable[Any]] | None
) -> list[Any]:
    """Every row's response or exception, in order.

    Raises:
        ClientDisconnectedError: ``disconnected()`` returned before every row was answered.
    """
    waiter: asyncio.Future[Any] = (
        futures[0] if len(futures) == 1 else asyncio.gather(*futures, return_exceptions=True)
    )
    if disconnected is not None and not waiter.done():
        done, _ = await asyncio.wait([waiter], timeout=DISCONNECT_WATCH_AFTER_S)
        if not done:
            watcher = asyncio.ensure_future(disconnected())
            try:
                await asyncio.wait([waiter, watcher], return_when=asyncio.FIRST_COMPLETED)
            finally:
                watcher.cancel()
            if not waiter.done():
                raise ClientDisconnectedError("The client disconnected before its answer.")
    if len(futures) > 1:
        answers: list[Any] = await waiter
        return answers
    try:
        return [await waiter]
    except Exception as error:  # noqa: BLE001 (a failing row fails only its own answer)
        return [error]


def unwrap(results: list[Any], count: int) -> list[BaseModel]:
    """The responses, or raise the first row's error (``items.<i>.<field>`` for a refused
    row of a multi-row call, so the 422 names the row)."""
    for index, result in enumerate(results):
        if isinstance(result, InvalidRequestError) and count > 1:
            raise InvalidRequestError(f"items.{index}.{result.field}", result.reason)
        if isinstance(result, BaseException):
            raise result
    return results
