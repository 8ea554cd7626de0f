"""Per-request sampling: greedy, temperature, top-k and top-p, from the request's own
``torch.Generator`` so a seeded request draws the same numbers alone or batched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    """How one request decodes. ``temperature == 0`` is greedy; ``top_k == 0`` and
    ``top_p == 1`` switch those filters off; ``seed=None`` draws a fresh random seed."""

    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    seed: int | None = None


def sample(logits: Any, params: SamplingParams, generator: Any) -> int:
    """One token id from a ``[vocab]`` logits row with ``params`` (greedy when
    ``temperature == 0``), drawing randomness only from ``generator``."""
    import torch

    if params.temperature == 0:
        return int(torch.argmax(logits))
    scores = logits.float() / params.temperature
    if 0 < params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the most
        # likely token is always kept.
        drop = (probs.cumsum(dim=-1) - probs) >= params.top_p
        drop[0] = False
        scores = scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
