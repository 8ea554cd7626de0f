"""The continuous-batching engine on a tiny random LM: joining, equality, stop, cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from opsline.recipes.text_generation.engine import GenerationEngine, SamplingParams, sample

GREEDY = SamplingParams(max_new_tokens=12, temperature=0)
SEEDED = SamplingParams(max_new_tokens=12, temperature=0.9, top_p=0.9, top_k=40, seed=1234)
PROMPTS = [
    "To be, or not",
    "Now is the winter of our discontent made glorious",
    "O",
    "All the world's a stage",
]


class Recorder:
    """Observer recording what the engine reports; optionally holds the engine inside
    decode step ``hold_at`` until :meth:`release`, so a test can act mid-generation."""

    def __init__(self, hold_at: int | None = None):
        self.steps: list[int] = []
        self.active: list[int] = []
        self.generations: list[tuple[int, float]] = []
        self.hold_at = hold_at
        self.holding = threading.Event()
        self._release = threading.Event()

    def observe_decode_step(self, rows: int) -> None:
        self.steps.append(rows)
        if len(self.steps) == self.hold_at:
            self.holding.set()
            assert self._release.wait(30), "test never released the engine"

    def set_active_sequences(self, count: int) -> None:
        self.active.append(count)

    def observe_generation(self, tokens: int, seconds: float) -> None:
        self.generations.append((tokens, seconds))

    def release(self) -> None:
        self._release.set()


@pytest.fixture
def make_engine(tiny_lm) -> Iterator:
    model, tokenizer = tiny_lm
    engines = []

    def make(max_batch_size: int = 8, observer=None, eos=None) -> GenerationEngine:
        engine = GenerationEngine(
            model,
            [tokenizer.eos_token_id] if eos is None else eos,
            max_batch_size=max_batch_size,
            observer=observer,
        )
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]


def solo(engine: GenerationEngine, prompt_ids: list[int], params: SamplingParams) -> list[int]:
    return engine.submit(prompt_ids, params).result(timeout=60).token_ids


@pytest.mark.parametrize("params", [GREEDY, SEEDED], ids=["greedy", "seeded-sampling"])
def test_requests_joining_a_running_batch_give_the_same_tokens_as_alone(
    make_engine, tiny_lm, params: SamplingParams
) -> None:
    _, tokenizer = tiny_lm
    prompts = [ids(tokenizer, p) for p in PROMPTS]
    alone = [solo(make_engine(), p, params) for p in prompts]

    recorder = Recorder(hold_at=3)
    engine = make_engine(observer=recorder)
    first = engine.submit(prompts[0], params)
    assert recorder.holding.wait(30)  # the first request is 3 steps into decoding
    # Longer and shorter prompts than the running row's cache: both padding directions.
    later = [engine.submit(p, params) for p in prompts[1:]]
    recorder.release()
    together = [h.result(timeout=60).token_ids for h in [first, *later]]

    assert together == alone
    assert max(recorder.steps) == 4  # the newcomers really decoded in one batch with it
    assert recorder.steps[:3] == [1, 1, 1]


def test_greedy_matches_transformers_generate(make_engine, tiny_lm) -> None:
    import torch

    model, tokenizer = tiny_lm
    engine = make_engine()
    handles = [engine.submit(ids(tokenizer, p), GREEDY) for p in PROMPTS]
    for prompt, handle in zip(PROMPTS, handles, strict=True):
        prompt_ids = ids(tokenizer, prompt)
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([prompt_ids]),
                do_sample=False,
                max_new_tokens=GREEDY.max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        expected = [t for t in out[0, len(prompt_ids) :].tolist() if t != tokenizer.eos_token_id]
        assert handle.result(timeout=60).token_ids == expected


def test_concurrent_submits_from_threads_are_decoded_together(make_engine, tiny_lm) -> None:
    _, tokenizer = tiny_lm
    recorder = Recorder(hold_at=1)
    engine = make_engine(observer=recorder)
    results: dict[int, list[int]] = {}
    first = engine.submit(ids(tokenizer, PROMPTS[0]), GREEDY)
    assert recorder.holding.wait(30)

    def client(i: int) -> None:
        results[i] = engine.submit(ids(tokenizer, PROMPTS[i]), GREEDY).result(60).token_ids

    threads = [threading.Thread(target=client, args=(i,)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while engine.pending < 3:  # all three queued while the engine is mid-step
        assert time.monotonic() < deadline, "requests never queued"
        threading.Event().wait(0.005)
    recorder.release()
    for t in threads:
        t.join(60)
    first.result(60)
    assert max(recorder.steps) == 4 and engine.peak_rows == 4
    assert len(results) == 3 and recorder.active[-1] == 0
    assert [n for n, _ in recorder.generations] == [GREEDY.max_new_tokens] * 4


def test_max_batch_size_bounds_the_rows_and_queued_requests_still_finish(
    make_engine, tiny_lm
) -> None:
    _, tokenizer = tiny_lm
    recorder = Recorder()
    engine = make_engine(max_batch_size=2, observer=recorder)
    handles = [engine.submit(ids(tokenizer, p), GREEDY) for p in PROMPTS]
    results = [h.result(60) for h in handles]
    assert max(recorder.steps) == 2
    assert all(r.finish_reason == "length" and len(r.token_ids) == 12 for r in results)


def test_stop_token_ends_with_stop_and_length_limit_with_length(make_engine, tiny_lm) -> None:
    _, tokenizer = tiny_lm
    prompt = ids(tokenizer, PROMPTS[1])
    free_run = solo(make_engine(eos=[]), prompt, GREEDY)
    # Make the first token that is new after position 0 the stop token.
    k = next(i for i, t in enumerate(free_run) if i > 0 and t not in free_run[:i])
    result = make_engine(eos=[free_run[k]]).submit(prompt, GREEDY).result(60)
    assert result.finish_reason == "stop"
    assert result.token_ids == free_run[:k]  # the stop token itself is not part of the text

    short = (
        make_engine(eos=[])
        .submit(prompt, SamplingParams(max_new_tokens=5, temperature=0))
        .result(60)
    )
    assert short.finish_reason == "length" and short.token_ids == free_run[:5]


def test_cancel_frees_the_row_at_once(make_engine, tiny_lm) -> None:
    _, tokenizer = tiny_lm
    recorder = Recorder(hold_at=2)
    engine = make_engine(observer=recorder)
    long = SamplingParams(max_new_tokens=40, temperature=0)
    keep = engine.submit(ids(tokenizer, PROMPTS[0]), long)
    drop = engine.submit(ids(tokenizer, PROMPTS[1]), long)
    assert recorder.holding.wait(30)
    assert engine.active_rows == 2
    drop.cancel()
    recorder.release()
    dropped = drop.result(60)
    assert dropped.finish_reason == "cancelled" and len(dropped.token_ids) < 40
    assert keep.result(60).finish_reason == "length"
    assert engine.active_rows == 0 and engine.finished["cancelled"] == 1
    # After the cancel, only one row decoded per step.
    assert recorder.steps[2:] and set(recorder.steps[2:]) == {1}


def test_token_iterator_streams_what_result_returns(make_engine, tiny_lm) -> None:
    _, tokenizer = tiny_lm
    handle = make_engine().submit(ids(tokenizer, PROMPTS[2]), SEEDED)
    assert list(handle) == handle.result(60).token_ids


def test_a_failing_model_fails_its_requests_and_the_engine_keeps_serving(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return model(*args, **kwargs)

    engine = GenerationEngine(flaky, [tokenizer.eos_token_id])
    try:
        with pytest.raises(RuntimeError, match="boom"):
            engine.submit(ids(tokenizer, PROMPTS[0]), GREEDY).result(60)
        assert len(engine.submit(ids(tokenizer, PROMPTS[0]), GREEDY).result(60).token_ids) == 12
    finally:
        engine.close()


def test_close_ends_waiting_requests(tiny_lm) -> None:
    model, tokenizer = tiny_lm
    recorder = Recorder(hold_at=1)
    engine = GenerationEngine(model, [], observer=recorder)
    running = engine.submit(ids(tokenizer, PROMPTS[0]), GREEDY)
    assert recorder.holding.wait(30)
    waiting = engine.submit(ids(tokenizer, PROMPTS[1]), GREEDY)
    closer = threading.Thread(target=engine.close)
    closer.start()
    recorder.release()
    closer.join(30)
    assert not closer.is_alive(), "close() hung"
    assert running.result(5).finish_reason == "cancelled"
    assert waiting.result(5).finish_reason == "cancelled"


# -- sampling -----------------------------------------------------------------------------
def test_sampling_filters() -> None:
    import torch

    logits = torch.tensor([1.0, 3.0, 2.0, 0.5])
    gen = torch.Generator().manual_seed(0)
    assert sample(logits, SamplingParams(temperature=0), gen) == 1
    # top_k=1 and a tiny top_p both leave only the most likely token.
    assert {
        sample(logits, SamplingParams(temperature=5, top_k=1, top_p=1), gen) for _ in range(50)
    } == {1}
    assert {
        sample(logits, SamplingParams(temperature=5, top_k=0, top_p=0.01), gen) for _ in range(50)
    } == {1}
    # top_k=2 never draws outside the two most likely tokens; a hot temperature draws both.
    assert {
        sample(logits, SamplingParams(temperature=50, top_k=2, top_p=1), gen) for _ in range(200)
    } == {1, 2}
    # top_p: p = [.085, .631, .232, .052]; .631 + .232 reaches 0.8: 0 and 3 never drawn.
    assert {
        sample(logits, SamplingParams(temperature=1, top_k=0, top_p=0.8), gen) for _ in range(300)
    } == {1, 2}


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    import torch

    logits = torch.zeros(50)
    params = SamplingParams(temperature=1, top_k=0, top_p=1)

    def draws(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return [sample(logits, params, gen) for _ in range(20)]

    assert draws(7) == draws(7) and draws(7) != draws(8)
