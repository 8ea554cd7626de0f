"""The adaptive batcher: merging, never waiting when idle, groups, isolation, limits, drain."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from opsline.errors import InvalidRequestError, NoModelError
from opsline.monitoring.metrics import ServingMetrics
from opsline.recipes.base import Predictor
from opsline.serving.batcher import Batcher, ClientDisconnectedError, QueueFullError
from opsline.serving.runtime import LoadedModel, ModelSlot

from .conftest import StubRequest, StubResponse


class RecordingPredictor(Predictor):
    """Doubles x; records every batch; ``x == 13`` fails the batch, ``x == 66`` is a
    request the model refuses (422); ``gate`` holds the first batch until released."""

    def __init__(self, max_batch_size: int | None = None, by_label: bool = False):
        self.info = {"kind": "recording"}
        self.batches: list[list[float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.max_batch_size = max_batch_size
        self.by_label = by_label

    @classmethod
    def load(cls, model_dir: Any) -> RecordingPredictor:  # pragma: no cover - not loaded
        return cls()

    def batch_key(self, request: BaseModel) -> Any:
        return request.label if self.by_label else None

    def preprocess(self, requests: Sequence[BaseModel]) -> list[float]:
        return [r.x for r in requests]

    def forward(self, batch: list[float]) -> list[float]:
        self.batches.append(list(batch))
        self.started.set()
        self.gate.wait(10)
        if 13 in batch:
            raise RuntimeError("unlucky input")
        if 66 in batch:
            raise InvalidRequestError("x", "66 is refused by the model")
        return [2 * x for x in batch]

    def postprocess(self, outputs: list[float], requests: Sequence[BaseModel]) -> list[BaseModel]:
        return [StubResponse(y=y) for y in outputs]


def _batcher(predictor: Predictor | None, **options: Any) -> tuple[Batcher, ServingMetrics]:
    metrics = ServingMetrics()
    slot = ModelSlot(
        model=LoadedModel(predictor, "stub", "dir") if predictor else None,
        error=None if predictor else "nothing trained",
    )
    return Batcher(slot, metrics, **options), metrics


def run(coro: Any) -> Any:
    """Run a scenario on its own event loop in its own thread: a session fixture (Playwright's
    sync API, for the browser tests) may already own a running loop in the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _sample(metrics: ServingMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


def test_a_lone_request_runs_at_once_even_with_a_long_max_delay() -> None:
    predictor = RecordingPredictor()

    async def scenario() -> float:
        batcher, _ = _batcher(predictor, max_delay_s=5.0)
        batcher.start()
        started = time.perf_counter()
        [response] = await batcher.submit([StubRequest(x=3)])
        elapsed = time.perf_counter() - started
        await batcher.stop()
        assert response.y == 6
        return elapsed

    # Waiting for the delay would take 5 s; an idle batcher dispatches immediately.
    assert run(scenario()) < 2.5
    assert predictor.batches == [[3]]


def test_requests_arriving_while_a_batch_runs_are_merged_into_one_call() -> None:
    predictor = RecordingPredictor()
    predictor.gate.clear()

    async def scenario() -> list[Any]:
        batcher, metrics = _batcher(predictor, max_delay_s=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([StubRequest(x=1)]))
        await asyncio.to_thread(predictor.started.wait, 10)
        rest = [
            asyncio.ensure_future(batcher.submit([StubRequest(x=float(i))])) for i in range(2, 12)
        ]
        await asyncio.sleep(0.05)
        assert batcher.queued == 10
        predictor.gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.stop()
        assert _sample(metrics, "opsline_batch_rows_count") == 2
        assert _sample(metrics, "opsline_batch_rows_sum") == 11
        return results

    results = run(scenario())
    assert [r[0].y for r in results] == [2 * x for x in range(1, 12)]
    assert predictor.batches == [[1], [float(x) for x in range(2, 12)]]


def test_batches_respect_max_size_and_the_predictors_own_limit() -> None:
    predictor = RecordingPredictor(max_batch_size=3)
    predictor.gate.clear()

    async def scenario() -> None:
        batcher, _ = _batcher(predictor, max_size=100, max_delay_s=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([StubRequest(x=0)]))
        await asyncio.to_thread(predictor.started.wait, 10)
        many = asyncio.ensure_future(batcher.submit([StubRequest(x=float(i)) for i in range(1, 8)]))
        await asyncio.sleep(0.05)
        predictor.gate.set()
        await first
        assert [r.y for r in await many] == [2 * i for i in range(1, 8)]
        await batcher.stop()

    run(scenario())
    assert [len(b) for b in predictor.batches] == [1, 3, 3, 1]


def test_rows_of_different_groups_never_share_a_batch() -> None:
    predictor = RecordingPredictor(by_label=True)
    predictor.gate.clear()

    async def scenario() -> None:
        batcher, _ = _batcher(predictor, max_delay_s=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([StubRequest(x=0)]))
        await asyncio.to_thread(predictor.started.wait, 10)
        mixed = [
            asyncio.ensure_future(batcher.submit([StubRequest(x=float(i), label=label)]))
            for i, label in enumerate("abab", start=1)
        ]
        await asyncio.sleep(0.05)
        predictor.gate.set()
        await asyncio.gather(first, *mixed)
        await batcher.stop()

    run(scenario())
    # Oldest group first (a: 1, 3), then b (2, 4); never a and b together.
    assert predictor.batches == [[0], [1, 3], [2, 4]]


def test_a_failing_row_fails_alone_and_its_neighbours_are_answered() -> None:
    predictor = RecordingPredictor()
    predictor.gate.clear()

    async def scenario() -> list[Any]:
        batcher, _ = _batcher(predictor, max_delay_s=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([StubRequest(x=0)]))
        await asyncio.to_thread(predictor.started.wait, 10)
        calls = [
            asyncio.ensure_future(batcher.submit([StubRequest(x=x)])) for x in (1, 13, 2, 66, 3)
        ]
        await asyncio.sleep(0.05)
        predictor.gate.set()
        await first
        out = await asyncio.gather(*calls, return_exceptions=True)
        await batcher.stop()
        return out

    ok1, crash, ok2, refused, ok3 = run(scenario())
    assert [ok1[0].y, ok2[0].y, ok3[0].y] == [2, 4, 6]
    assert isinstance(crash, RuntimeError)
    assert isinstance(refused, InvalidRequestError) and refused.field == "x"


def test_a_refused_row_in_a_multi_row_call_names_its_index() -> None:
    async def scenario() -> None:
        batcher, _ = _batcher(RecordingPredictor())
        batcher.start()
        with pytest.raises(InvalidRequestError) as info:
            await batcher.submit([StubRequest(x=1), StubRequest(x=66)])
        assert info.value.field == "items.1.x"
        await batcher.stop()

    run(scenario())


def test_a_full_queue_is_refused_not_waited_on() -> None:
    predictor = RecordingPredictor()
    predictor.gate.clear()

    async def scenario() -> None:
        batcher, metrics = _batcher(predictor, max_queue=4, max_delay_s=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([StubRequest(x=0)]))
        await asyncio.to_thread(predictor.started.wait, 10)
        queued = asyncio.ensure_future(batcher.submit([StubRequest(x=float(i)) for i in range(4)]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            await batcher.submit([StubRequest(x=9)])
        assert _sample(metrics, "opsline_batch_rejected_total") == 1
        predictor.gate.set()
        await asyncio.gather(first, queued)
        await batcher.stop()

    run(scenario())


def test_a_client_that_disconnects_is_dropped_from_the_queue() -> None:
    predictor = RecordingPredictor()
    predictor.gate.clear()

    async def gone() -> None:
        return None  # the client has already left

    async def scenario() -> None:
        batcher, _ = _batcher(predictor, max_delay_s=0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([StubRequest(x=0)]))
        await asyncio.to_thread(predictor.started.wait, 10)
        with pytest.raises(ClientDisconnectedError):
            await batcher.submit([StubRequest(x=42)], gone)
        stays = asyncio.ensure_future(batcher.submit([StubRequest(x=5)]))
        await asyncio.sleep(0.01)
        predictor.gate.set()
        await asyncio.gather(first, stays)
        await batcher.stop()

    run(scenario())
    assert all(42 not in batch for batch in predictor.batches)
    assert predictor.batches == [[0], [5]]


def test_stop_drains_every_accepted_row() -> None:
    predictor = RecordingPredictor()
    predictor.gate.clear()

    async def scenario() -> list[Any]:
        batcher, _ = _batcher(predictor, max_delay_s=0)
        batcher.start()
        calls = [asyncio.ensure_future(batcher.submit([StubRequest(x=float(i))])) for i in range(6)]
        await asyncio.to_thread(predictor.started.wait, 10)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the queued rows
        predictor.gate.set()
        await stopping
        return await asyncio.gather(*calls)

    assert [r[0].y for r in run(scenario())] == [2 * i for i in range(6)]


def test_no_model_is_a_clear_error() -> None:
    async def scenario() -> None:
        batcher, _ = _batcher(None)
        batcher.start()
        with pytest.raises(NoModelError, match="nothing trained"):
            await batcher.submit([StubRequest(x=1)])
        await batcher.stop()

    run(scenario())


def test_under_load_a_batch_waits_up_to_max_delay_to_fill() -> None:
    predictor = RecordingPredictor()
    predictor.gate.clear()

    async def scenario() -> None:
        batcher, _ = _batcher(predictor, max_delay_s=1.0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([StubRequest(x=0)]))
        await asyncio.to_thread(predictor.started.wait, 10)
        second = asyncio.ensure_future(batcher.submit([StubRequest(x=1)]))
        await asyncio.sleep(2.0)  # a slow batch: a tenth of it (0.2 s) may be spent waiting
        predictor.gate.set()  # the model is free with one row waiting: it holds it ...
        await first
        await asyncio.sleep(0.1)
        third = asyncio.ensure_future(batcher.submit([StubRequest(x=2)]))  # ... for this one
        await asyncio.gather(second, third)
        await batcher.stop()

    run(scenario())
    assert predictor.batches == [[0], [1, 2]]
