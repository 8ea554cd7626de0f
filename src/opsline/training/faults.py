"""Test-only fault injection: make one rank fail mid-fit, to test the failure path.

Inactive unless ``OPSLINE_TEST_RANK_FAILURE=RANK:STEP`` is set (tests set it; nothing else
should): the process whose global rank is RANK raises at training step STEP.
"""

from __future__ import annotations

import os
from typing import Any

ENV = "OPSLINE_TEST_RANK_FAILURE"


class InjectedRankFailure(RuntimeError):
    """The failure a test asked for."""


def from_env() -> list[Any]:
    """The fault callback when ``OPSLINE_TEST_RANK_FAILURE`` asks for one, else nothing."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return []
    from lightning.pytorch.callbacks import Callback

    rank, step = (int(part) for part in spec.split(":"))

    class FailRank(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                                 batch_idx: int) -> None:
            if trainer.global_rank == rank and trainer.global_step >= step:
                raise InjectedRankFailure(f"{ENV}: rank {rank} fails at step {step}")

    return [FailRank()]
