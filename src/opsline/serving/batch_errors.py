"""The batcher's refusals: each maps to one HTTP status in :mod:`opsline.serving.errors`.

They live apart from the queue so the exception handlers, the OIP route and the OpenAPI
descriptions can name them without importing the worker loop.
"""

from __future__ import annotations

from opsline.errors import OpslineError


class QueueFullError(OpslineError):
    """The batcher's queue is full: the server answers 503 with ``Retry-After``."""

    def __init__(self, queued: int, limit: int, retry_after_s: int = 1):
        super().__init__(
            f"The server is overloaded: {queued} rows are already waiting "
            f"(limit {limit}); retry in {retry_after_s} s."
        )
        self.retry_after_s = retry_after_s


class ClientDisconnectedError(OpslineError):
    """The client went away while its rows were queued; they were dropped (499)."""


class ShuttingDownError(OpslineError):
    """A request arrived after the batcher stopped accepting work (503)."""
