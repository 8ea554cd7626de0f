"""Load an exported causal LM and serve it through the continuous-batching engine.

Every ``predict`` call submits its requests to one shared :class:`GenerationEngine` and
waits, so concurrent HTTP requests (each in its own worker thread) are decoded together in
one batch instead of one after another. ``stream`` hands back a :class:`TextStream` that
yields text deltas as tokens arrive.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from opsline.errors import InvalidRequestError, ModelLoadError
from opsline.recipes.base import Predictor
from opsline.recipes.text_generation.card import read_card
from opsline.recipes.text_generation.engine import (
    GenerationEngine,
    GenerationHandle,
    GenerationResult,
    SamplingParams,
)
from opsline.recipes.text_generation.schemas import GenerationRequest, GenerationResponse

#: Rows decoded together; ``$OPSLINE_GENERATION_BATCH`` overrides it when the server starts.
DEFAULT_BATCH = 8


def params_of(request: GenerationRequest) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=request.max_new_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        seed=request.seed,
    )


class TextDecoder:
    """Turns a growing list of token ids into text deltas.

    Decoding token by token breaks multi-byte characters (a UTF-8 character can span
    tokens) and merged tokens (spaces depend on neighbours); decoding the cumulative ids
    and emitting the new suffix does not. A trailing U+FFFD means an incomplete byte
    sequence: it is held back until the next token completes it.

    Only a short window is decoded per token (the incremental scheme of HF's streamers and
    vLLM): ``ids[prefix:read]`` were already sent and give the context that decides the
    spacing of what follows, ``ids[read:]`` are new. Decoding all ids every token would
    cost O(n²) over a 256-token stream.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # ids before this were sent

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def text(self) -> str:
        """All the text so far (one full decode, e.g. for the final response)."""
        return self._decode(self.ids)

    def push(self, token_id: int) -> str:
        """Add one token; the text it completes ("" while a character is incomplete)."""
        self.ids.append(int(token_id))
        return self._advance(hold_incomplete=True)

    def flush(self) -> str:
        """Whatever is left at the end (an incomplete character is emitted as is)."""
        return self._advance(hold_incomplete=False)

    def _advance(self, hold_incomplete: bool) -> str:
        sent = self._decode(self.ids[self._prefix : self._read])
        text = self._decode(self.ids[self._prefix :])
        if len(text) <= len(sent) or (hold_incomplete and text.endswith("\ufffd")):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return text[len(sent) :]


class TextStream:
    """One streaming generation: iterate for text deltas, then read ``response``."""

    def __init__(self, handle: GenerationHandle, tokenizer: Any):
        self.handle = handle
        self._decoder = TextDecoder(tokenizer)
        self.response: GenerationResponse | None = None

    def __iter__(self) -> Iterator[str]:
        for token_id in self.handle:
            delta = self._decoder.push(token_id)
            if delta:
                yield delta
        tail = self._decoder.flush()
        if tail:
            yield tail
        result = self.handle.result()
        self.response = GenerationResponse(
            text=self._decoder.text(),
            tokens=len(result.token_ids),
            finish_reason=result.finish_reason,
        )

    def cancel(self) -> None:
        self.handle.cancel()


class GenerationPredictor(Predictor):
    """Text generation with sampling options, batched across concurrent requests.

    Attributes:
        model, tokenizer: the loaded Hugging Face model and tokenizer (evaluation uses them).
        context_limit: most tokens (prompt + generated) one sequence may hold.
        engine: the shared continuous-batching engine.
        max_concurrency: requests the server should let in at once (the engine's batch).
    """

    # The continuous-batching engine merges concurrent requests itself (rows join and leave
    # between decoding steps); the server's batcher passes each request straight through.
    schedules_itself = True

    def __init__(
        self,
        model_dir: Path,
        card: dict[str, Any],
        model: Any,
        tokenizer: Any,
        context_limit: int,
        max_batch_size: int = DEFAULT_BATCH,
    ):
        self.model_dir, self.card = Path(model_dir), card
        self.model, self.tokenizer = model, tokenizer
        self.context_limit = int(context_limit)
        eos = _eos_ids(model, tokenizer)
        self.engine = GenerationEngine(model, eos, max_batch_size=max_batch_size)
        # One batch decoding plus one batch waiting to join: more in flight would only queue.
        self.max_concurrency = 2 * max_batch_size
        self.info = {
            "recipe": card.get("recipe"),
            "kind": card.get("kind"),
            "base_model": card.get("base_model"),
            "context_limit": self.context_limit,
            "parameters": sum(p.numel() for p in model.parameters()),
            "max_batch_size": max_batch_size,
        }

    @classmethod
    def load(cls, model_dir: Path) -> GenerationPredictor:
        model_dir = Path(model_dir)
        card = read_card(model_dir)  # recipe, kind and files checked before any weights
        where = repr(str(model_dir))
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        threads = os.environ.get("OPSLINE_GENERATION_THREADS")
        if threads:  # default: torch's own choice; one engine thread uses all its cores
            import torch

            torch.set_num_threads(max(1, int(threads)))
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - refuse the model, say why
            raise ModelLoadError(f"The tokenizer in {where} cannot be loaded: {exc}") from None
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(model_dir), local_files_only=True, use_safetensors=True
            )
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(
                f"The weights in {where} do not load: {str(exc).splitlines()[0]}"
            ) from None
        model.eval()
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            raise ModelLoadError(
                f"Tokenizer and model in {where} do not match: the tokenizer "
                f"has {len(tokenizer)} tokens, the embeddings "
                f"{model.get_input_embeddings().num_embeddings} rows."
            )
        # The card's limit (what training used) capped by the model's positions; never a
        # guess: a directory without either cannot say how long a prompt may be.
        positions = getattr(model.config, "max_position_embeddings", None)
        known = [int(v) for v in (card.get("context_limit"), positions) if v]
        if not known:
            raise ModelLoadError(
                f"{where} has no context_limit in its model card and the "
                f"model config has no max_position_embeddings."
            )
        batch = int(os.environ.get("OPSLINE_GENERATION_BATCH", DEFAULT_BATCH))
        return cls(model_dir, card, model, tokenizer, min(known), max(1, batch))

    # -- requests ----------------------------------------------------------------------
    def encode(self, request: GenerationRequest) -> list[int]:
        """Prompt token ids, or ``InvalidRequestError`` when they do not fit the context."""
        ids = self.tokenizer(request.prompt)["input_ids"]
        if not ids:
            raise InvalidRequestError("prompt", "prompt encodes to no tokens")
        room = self.context_limit - len(ids)
        if room < 1:
            raise InvalidRequestError(
                "prompt",
                f"prompt is {len(ids)} tokens; the model's context limit is "
                f"{self.context_limit} tokens (prompt + max_new_tokens)",
            )
        if request.max_new_tokens > room:
            raise InvalidRequestError(
                "max_new_tokens",
                f"prompt ({len(ids)} tokens) + max_new_tokens "
                f"({request.max_new_tokens}) exceeds the model's context "
                f"limit of {self.context_limit} tokens; at most {room} "
                f"new tokens fit",
            )
        return ids

    def check(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids (pass them to :meth:`stream`), or ``InvalidRequestError``
        if ``request`` cannot be served by this model."""
        return self.encode(request)

    def submit(self, request: GenerationRequest, ids: list[int] | None = None) -> GenerationHandle:
        return self.engine.submit(self.encode(request) if ids is None else ids, params_of(request))

    def stream(self, request: GenerationRequest, ids: list[int] | None = None) -> TextStream:
        """Start generating ``request`` (``ids``: its already checked prompt tokens);
        iterate the result for text deltas."""
        return TextStream(self.submit(request, ids), self.tokenizer)

    def response(self, result: GenerationResult) -> GenerationResponse:
        text = self.tokenizer.decode(result.token_ids, skip_special_tokens=True)
        return GenerationResponse(
            text=text, tokens=len(result.token_ids), finish_reason=result.finish_reason
        )

    # -- the Predictor contract ----------------------------------------------------------
    def preprocess(
        self, requests: Sequence[GenerationRequest]
    ) -> list[tuple[list[int], SamplingParams]]:
        # Every request is checked before any is submitted: a bad item fails the call
        # without leaving orphan generations running.
        return [(self.encode(r), params_of(r)) for r in requests]

    def forward(self, batch: list[tuple[list[int], SamplingParams]]) -> list[GenerationResult]:
        handles = [self.engine.submit(ids, params) for ids, params in batch]
        try:
            return [h.result() for h in handles]
        finally:  # an error (or an interrupted worker) must not leave rows decoding
            for handle in handles:
                handle.cancel()

    def postprocess(
        self, outputs: list[GenerationResult], requests: Sequence[GenerationRequest]
    ) -> list[GenerationResponse]:
        return [self.response(result) for result in outputs]

    # -- server hooks --------------------------------------------------------------------
    def bind_metrics(self, metrics: Any) -> None:
        """Report decode steps, active sequences and tokens/s to the server's metrics."""
        self.engine.observer = metrics

    def close(self) -> None:
        self.engine.close()


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends a generation: the generation config's (may be a list) and the
    tokenizer's end token."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for source in (
        getattr(config, "eos_token_id", None),
        model.config.eos_token_id,
        tokenizer.eos_token_id,
    ):
        if isinstance(source, int):
            ids.add(source)
        elif source is not None:
            ids.update(int(i) for i in source)
    return ids


def load_predictor(model_dir: Path) -> GenerationPredictor:
    return GenerationPredictor.load(model_dir)
