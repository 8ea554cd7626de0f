"""Test-only fault injection: make one rank fail mid-fit, to test the failure path.

Inactive unless ``OPSLINE_TEST_RANK_FAILURE=RANK:STEP`` is set (tests set it; nothing else
should): the process whose global rank is RANK raises at training step STEP, or, with
``STEP`` = ``start``, just before it joins the process group (a rank opsline launched).
"""

from __future__ import annotations

import os
from typing import Any

ENV = "OPSLINE_TEST_RANK_FAILURE"


class InjectedRankFailure(RuntimeError):
    """The failure a test asked for."""


def _spec() -> tuple[int, str] | None:
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    rank, step = spec.split(":")
    return int(rank), step


def before_rendezvous(this_rank: int) -> None:
    """Raise here when asked to fail rank ``this_rank`` at ``start``."""
    spec = _spec()
    if spec is not None and spec == (this_rank, "start"):
        raise InjectedRankFailure(f"{ENV}: rank {this_rank} fails before the rendezvous")


def from_env() -> list[Any]:
    """The fault callback when ``OPSLINE_TEST_RANK_FAILURE`` asks for one, else nothing."""
    spec = _spec()
    if spec is None or spec[1] == "start":
        return []
    from lightning.pytorch.callbacks import Callback

    rank, step = spec[0], int(spec[1])

    class FailRank(Callback):
        def on_train_batch_start(
            self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
        ) -> None:
            if trainer.global_rank == rank and trainer.global_step >= step:
                raise InjectedRankFailure(f"{ENV}: rank {rank} fails at step {step}")

    return [FailRank()]
