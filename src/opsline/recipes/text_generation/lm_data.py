"""Passages → fixed-length token blocks for causal-LM training and held-out perplexity.

Why concatenate-and-chunk rather than one padded row per passage: passages run from a few
to ~300 tokens, so padding every row to the longest would spend a large share of each CPU
step on pad positions that teach nothing. Joining the passages (each followed by the
end-of-text token, which teaches the model where a passage ends and lets generation stop)
and cutting the stream into ``block_size`` pieces makes every position of every step count.
The last partial block is dropped. Held-out perplexity is measured on blocks built the same
way, so base and fine-tuned models are scored on exactly the same tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch


def token_stream(tokenizer: Any, texts: Iterable[str]) -> list[int]:
    """All passages encoded without special tokens, each followed by end-of-text."""
    texts = [str(t) for t in texts]
    if not texts:
        return []
    eos = int(tokenizer.eos_token_id)
    stream: list[int] = []
    # verbose=False: passages longer than model_max_length are expected, blocks cut them.
    for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    return stream


def chunk(stream: Sequence[int], block_size: int) -> torch.Tensor:
    """``[n_blocks, block_size]`` long tensor of consecutive pieces; the remainder dropped."""
    n = len(stream) // int(block_size)
    if n == 0:
        return torch.empty((0, int(block_size)), dtype=torch.long)
    return torch.tensor(list(stream[: n * block_size]), dtype=torch.long).view(n, block_size)


def spread(blocks: torch.Tensor, max_blocks: int | None) -> torch.Tensor:
    """At most ``max_blocks`` blocks evenly spaced over the split (all when None).

    Evenly spaced, not the first ones: a split is ordered by play and scene, and the first
    blocks would all come from one play.
    """
    if not max_blocks or len(blocks) <= int(max_blocks):
        return blocks
    index = torch.linspace(0, len(blocks) - 1, int(max_blocks)).round().long()
    return blocks[index]


def blocks_of(
    tokenizer: Any, texts: Iterable[str], block_size: int, max_blocks: int | None = None
) -> torch.Tensor:
    """The (possibly subsampled) token blocks of a split's passages."""
    return spread(chunk(token_stream(tokenizer, texts), block_size), max_blocks)


def split_key(texts: Iterable[str], block_size: int, max_blocks: int | None) -> str:
    """Identity of one held-out measurement: the split's texts and how they were blocked.

    ``evaluate`` only sees a frame, not its split name; the base model's perplexity is stored
    under this key at training time and looked up with it, so it is reported only when it
    was measured on the very same tokens.
    """
    digest = hashlib.sha256()
    for text in texts:
        digest.update(str(text).encode("utf-8"))
        digest.update(b"\0")
    digest.update(f"|{int(block_size)}|{int(max_blocks or 0)}".encode())
    return digest.hexdigest()[:16]


def collate(rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Blocks → ``{"input_ids": [batch, block_size]}``: the Hugging Face batch layout, which
    the training telemetry also reads to count tokens per second."""
    return {"input_ids": torch.stack(rows)}


def loader(blocks: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0) -> Any:
    """A ``DataLoader`` of ``{"input_ids": tensor}`` batches (seeded shuffling)."""
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(int(seed)) if shuffle else None
    # No workers: the blocks are already in memory.
    return DataLoader(
        blocks, batch_size=int(batch_size), shuffle=shuffle, generator=generator, collate_fn=collate
    )
