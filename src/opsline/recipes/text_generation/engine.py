"""A continuous-batching generation engine for any Hugging Face causal LM.

One background thread owns the model and decodes every running request together, one token
per step. A request that arrives while others decode does not wait for them: at the next
step it is *prefilled* alone (its prompt run through the model, filling a KV cache of its
own and giving its first token), then its cache is *merged* into the running batch:

* each layer's keys/values are ``[rows, heads, length, head_dim]`` tensors
  (``transformers.DynamicLayer``); the shorter side (batch or newcomer) is left-padded with
  zeros to the common length and the two are concatenated on the row dimension;
* a ``[rows, length]`` attention mask marks the padding (0) so no row attends to it;
* every row keeps its own position counter, passed as explicit ``position_ids``, so rotary
  embeddings see the same positions as when the row runs alone.

A finished or cancelled row leaves at once (``DynamicCache.batch_select_indices``), and
padding columns no remaining row needs are cropped, so its slot frees at the next step.

Each row samples with its own options and its own ``torch.Generator`` (seeded from the
request's ``seed``), one row at a time, so a seeded request draws the same random numbers
alone or batched. Batching changes only the floating-point reduction order of the matrix
products (different shapes, masked padding), i.e. logits differ in the last bits: greedy
results match exactly unless two top logits tie to ~1e-6, and seeded sampling matches
unless a uniform draw falls within that distance of a cumulative-probability boundary;
neither happens in practice, and the tests assert both.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsline.recipes.text_generation.sampling import SamplingParams, sample

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    """A finished generation: new token ids (an end token excluded) and why it ended."""

    token_ids: list[int]
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    seconds: float


class Observer(Protocol):
    """What the engine reports to (``opsline.monitoring.metrics.ServingMetrics`` fits)."""

    def observe_decode_step(self, rows: int) -> None: ...
    def set_active_sequences(self, count: int) -> None: ...
    def observe_generation(self, tokens: int, seconds: float) -> None: ...


_END = object()  # queue sentinel: no more tokens


class GenerationHandle:
    """The caller's side of one submitted request (thread-safe).

    Iterate it to receive token ids as they are generated (blocking); ``result()`` waits for
    the end; ``cancel()`` makes the row leave the batch at the next step.
    """

    def __init__(self, prompt_ids: Sequence[int], params: SamplingParams, wake: Any):
        self.prompt_ids = list(prompt_ids)
        self.params = params
        self._wake = wake
        self._events: queue.Queue[Any] = queue.Queue()
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._token_ids: list[int] = []
        self._finish_reason: str | None = None
        self._error: BaseException | None = None
        self._submitted = time.perf_counter()
        self._seconds = 0.0

    # -- caller side ------------------------------------------------------------------
    def __iter__(self) -> Iterator[int]:
        """Token ids as they come; ends when the generation ends (re-raises its error)."""
        while True:
            item = self._events.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the end of the generation (``TimeoutError`` after ``timeout`` s)."""
        if not self._done.wait(timeout):
            raise TimeoutError("generation still running")
        if self._error is not None:
            raise self._error
        return GenerationResult(
            list(self._token_ids),
            self._finish_reason or "stop",
            len(self.prompt_ids),
            self._seconds,
        )

    def cancel(self) -> None:
        """Stop generating; the row frees its batch slot at the next step. Idempotent."""
        if not self._done.is_set():
            self._cancelled.set()
            self._wake()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # -- engine side -------------------------------------------------------------------
    def _emit(self, token_id: int) -> None:
        self._token_ids.append(token_id)
        self._events.put(token_id)

    def _finish(self, reason: str, error: BaseException | None = None) -> None:
        self._finish_reason, self._error = reason, error
        self._seconds = self._seconds or time.perf_counter() - self._submitted
        self._done.set()
        self._events.put(_END)


@dataclass
class _Row:
    """Engine-thread state of one running request."""

    handle: GenerationHandle
    generator: Any  # torch.Generator
    position: int  # position id of ``last_token`` (= tokens before it)
    last_token: int  # sampled, not yet fed to the model
    generated: int = 0  # tokens sampled so far, end token included


@dataclass
class _Batch:
    """The running batch: rows, their merged KV cache and padding mask."""

    rows: list[_Row] = field(default_factory=list)
    cache: Any = None  # transformers DynamicCache, [rows, heads, length, dim] per layer
    mask: Any = None  # [rows, length] long tensor, 0 = left padding


class GenerationEngine:
    """Decode many requests together on one model, admitting newcomers at every step.

    Args:
        model: a Hugging Face causal LM (``model(input_ids, attention_mask, position_ids,
            past_key_values)``) in eval mode.
        eos_token_ids: ids that end a generation (``finish_reason="stop"``).
        max_batch_size: most rows decoded together; later requests wait for a free slot.
        observer: receives decode-step, active-sequence and per-generation metrics.
    """

    def __init__(
        self,
        model: Any,
        eos_token_ids: Iterable[int],
        max_batch_size: int = 8,
        observer: Observer | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.model = model
        self.eos_token_ids = frozenset(int(i) for i in eos_token_ids)
        self.max_batch_size = int(max_batch_size)
        self.observer = observer
        self._pending: list[GenerationHandle] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._batch = _Batch()
        self._active = 0  # rows in the batch, readable from any thread
        self.peak_rows = 0  # the largest batch decoded so far (tests, benchmarks)
        self.finished: Counter[str] = Counter()  # finish reasons so far

    # -- public API --------------------------------------------------------------------
    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> GenerationHandle:
        """Queue one request; it joins the running batch at the next decoding step."""
        if not prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        handle = GenerationHandle(prompt_ids, params, self._notify)
        with self._cond:
            if self._closed:
                raise RuntimeError("the generation engine is closed")
            self._pending.append(handle)
            if self._thread is None:  # started lazily: loading for evaluation spawns nothing
                self._thread = threading.Thread(
                    target=self._run, name="opsline-generation", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return handle

    @property
    def active_rows(self) -> int:
        """Rows currently in the decoding batch."""
        return self._active

    @property
    def pending(self) -> int:
        """Requests waiting for a slot (or for the next step)."""
        with self._cond:
            return len(self._pending)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything and stop the decoding thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- engine thread -----------------------------------------------------------------
    def _notify(self) -> None:
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._closed and not self._pending and not self._batch.rows:
                        self._cond.wait()
                    if self._closed:
                        break
                    free = self.max_batch_size - len(self._batch.rows)
                    newcomers, self._pending = self._pending[:free], self._pending[free:]
                    # Requests cancelled while still waiting for a slot end right away.
                    waiting = [h for h in self._pending if h.cancelled]
                    self._pending = [h for h in self._pending if not h.cancelled]
                for handle in waiting:
                    self._end(handle, "cancelled")
                for handle in newcomers:
                    self._guarded(self._admit, handle)
                self._drop([(r, "cancelled") for r in self._batch.rows if r.handle.cancelled])
                if self._batch.rows:
                    self._guarded(self._step)
        # Closed: nothing will decode any more, so nobody may wait forever.
        rows, self._batch = self._batch.rows, _Batch()
        self._set_active()
        for handle in [r.handle for r in rows] + self._pending:
            self._end(handle, "cancelled")

    def _guarded(self, work: Any, *args: Any) -> None:
        """Run one engine action; if the model raises, fail the requests it touched and keep
        serving the others (a prefill failure touches only its newcomer, whose cache is
        merged last; a failed step may leave the shared cache half-updated, so it fails
        every running row)."""
        try:
            work(*args)
        except Exception as error:  # one bad request must not kill the server
            log.exception("Generation failed in %s", getattr(work, "__name__", work))
            victims = list(args) if args else [r.handle for r in self._batch.rows]
            if not args:
                self._batch = _Batch()
            self._set_active()
            for handle in victims:
                if not handle.done:
                    self.finished["error"] += 1
                    handle._finish("error", error)

    def _admit(self, handle: GenerationHandle) -> None:
        """Prefill one newcomer alone, emit its first token, merge it into the batch."""
        import torch
        from transformers import DynamicCache

        if handle.cancelled:
            self._end(handle, "cancelled")
            return
        n = len(handle.prompt_ids)
        cache = DynamicCache()
        out = self.model(
            input_ids=torch.tensor([handle.prompt_ids]),
            attention_mask=torch.ones(1, n, dtype=torch.long),
            position_ids=torch.arange(n).unsqueeze(0),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        generator = torch.Generator()
        if handle.params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(handle.params.seed))
        row = _Row(handle, generator, position=n, last_token=-1)
        reason = self._advance(row, out.logits[0, -1])
        if reason is not None:  # done after one token: never joins the batch
            self._end(handle, reason)
            return
        batch = self._batch
        mask = torch.ones(1, n, dtype=torch.long)
        if not batch.rows:
            batch.cache, batch.mask = cache, mask
        else:
            length = max(batch.mask.shape[1], n)
            _left_pad(batch.cache, length - batch.mask.shape[1])
            _left_pad(cache, length - n)
            for ours, theirs in zip(batch.cache.layers, cache.layers, strict=True):
                ours.keys = torch.cat([ours.keys, theirs.keys])
                ours.values = torch.cat([ours.values, theirs.values])
            pad = torch.nn.functional.pad
            batch.mask = torch.cat(
                [pad(batch.mask, (length - batch.mask.shape[1], 0)), pad(mask, (length - n, 0))]
            )
        batch.rows.append(row)
        self._set_active()

    def _step(self) -> None:
        """Feed every row its last token; sample the next one per row; drop finished rows."""
        import torch

        batch = self._batch
        rows = batch.rows
        mask = torch.cat([batch.mask, torch.ones(len(rows), 1, dtype=torch.long)], dim=1)
        out = self.model(
            input_ids=torch.tensor([[r.last_token] for r in rows]),
            attention_mask=mask,
            position_ids=torch.tensor([[r.position] for r in rows]),
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.mask = mask
        self.peak_rows = max(self.peak_rows, len(rows))
        self._observe("observe_decode_step", len(rows))
        logits = out.logits[:, -1]
        finished = []
        for i, row in enumerate(rows):
            row.position += 1
            reason = self._advance(row, logits[i])
            if reason is not None:
                finished.append((row, reason))
        self._drop(finished)

    def _advance(self, row: _Row, logits: Any) -> str | None:
        """Sample and emit one token for ``row``; the finish reason if it is done."""
        token = sample(logits, row.handle.params, row.generator)
        row.generated += 1
        row.last_token = token
        if token in self.eos_token_ids:
            return "stop"
        row.handle._emit(token)
        if row.generated >= row.handle.params.max_new_tokens:
            return "length"
        return None

    def _drop(self, leaving: list[tuple[_Row, str]]) -> None:
        """Remove rows from the batch, then end them: a caller woken by the end already
        sees the slot free."""
        if not leaving:
            return
        import torch

        gone = {id(r) for r, _ in leaving}
        batch = self._batch
        keep = [i for i, r in enumerate(batch.rows) if id(r) not in gone]
        if not keep:
            self._batch = _Batch()
        else:
            batch.cache.batch_select_indices(torch.tensor(keep))
            batch.rows = [batch.rows[i] for i in keep]
            batch.mask = batch.mask[keep]
            # Columns that are padding for every remaining row are dead weight: crop them.
            leading = int(batch.mask.cumsum(dim=1).eq(0).all(dim=0).sum())
            if leading:
                batch.mask = batch.mask[:, leading:]
                for layer in batch.cache.layers:
                    layer.keys = layer.keys[..., leading:, :]
                    layer.values = layer.values[..., leading:, :]
        self._set_active()
        for row, reason in leaving:
            self._end(row.handle, reason)

    def _end(self, handle: GenerationHandle, reason: str) -> None:
        """Finish ``handle``, after the books are kept (so a woken caller sees them)."""
        if handle.done:
            return
        handle._seconds = time.perf_counter() - handle._submitted
        self.finished[reason] += 1
        self._observe("observe_generation", len(handle._token_ids), handle._seconds)
        handle._finish(reason)

    def _set_active(self) -> None:
        self._active = len(self._batch.rows)
        self._observe("set_active_sequences", self._active)

    def _observe(self, method: str, *args: Any) -> None:
        if self.observer is None:
            return
        try:
            getattr(self.observer, method)(*args)
        except Exception:  # metrics must never stop generation
            log.debug("observer %s failed", method, exc_info=True)


def _left_pad(cache: Any, amount: int) -> None:
    """Left-pad every layer's keys/values of ``cache`` by ``amount`` zero positions."""
    if amount <= 0:
        return
    import torch

    pad = torch.nn.functional.pad
    for layer in cache.layers:
        layer.keys = pad(layer.keys, (0, 0, amount, 0))
        layer.values = pad(layer.values, (0, 0, amount, 0))
