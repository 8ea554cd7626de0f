"""Tokenized pairs -> length-bucketed, padded batches (labels' padding masked to -100).

Sentences of similar length share a batch, so a batch of short sentences is not padded to
the longest sentence of the epoch: on Tatoeba this roughly halves the compute per epoch.
Batches are shuffled each epoch (seeded), so the model does not see lengths in order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from opsline.recipes.translation.model import mask_padding


def encode_pairs(
    tokenizer: Any,
    sources: Sequence[str],
    targets: Sequence[str],
    max_source: int,
    max_target: int,
    prefix: str = "",
) -> list[tuple[list, list]]:
    """(source ids, target ids) per pair; the task prefix (T5) is added here, once."""
    src = tokenizer([prefix + s for s in sources], truncation=True, max_length=max_source)[
        "input_ids"
    ]
    tgt = tokenizer(text_target=list(targets), truncation=True, max_length=max_target)["input_ids"]
    return list(zip(src, tgt, strict=True))


class PairDataset(Dataset):
    def __init__(self, pairs: list[tuple[list, list]]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[list, list]:
        return self.pairs[index]


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length pairs; ``shuffle`` reshuffles pool and batch order per epoch."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        pool_batches: int = 50,
    ):
        self.lengths = list(lengths)
        self.batch_size = max(1, int(batch_size))
        self.shuffle = shuffle
        self.seed = seed
        self.pool = self.batch_size * pool_batches
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(range(len(self.lengths)))
        rng = random.Random(self.seed + self.epoch)
        self.epoch += 1
        if self.shuffle:
            rng.shuffle(indices)
        else:  # evaluation: one global sort, fewest pads
            self.pool = len(indices) or 1
        batches: list[list[int]] = []
        for start in range(0, len(indices), self.pool):
            pool = sorted(indices[start : start + self.pool], key=self.lengths.__getitem__)
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return iter(batches)


class Collator:
    """Pads sources with pad/attention 0 and labels with -100."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[tuple[list, list]]) -> dict[str, torch.Tensor]:
        src_len = max(len(s) for s, _ in items)
        tgt_len = max(len(t) for _, t in items)
        input_ids = torch.full((len(items), src_len), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(items), src_len), dtype=torch.long)
        labels = torch.full((len(items), tgt_len), self.pad_id, dtype=torch.long)
        for row, (src, tgt) in enumerate(items):
            input_ids[row, : len(src)] = torch.tensor(src)
            attention[row, : len(src)] = 1
            labels[row, : len(tgt)] = torch.tensor(tgt)
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": mask_padding(labels, self.pad_id),
        }


def loader(
    pairs: list[tuple[list, list]], batch_size: int, pad_id: int, shuffle: bool, seed: int = 0
) -> Any:
    """A ``DataLoader`` over ``pairs`` with bucketed batches."""
    from torch.utils.data import DataLoader

    lengths = [len(s) + len(t) for s, t in pairs]
    sampler = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed)
    return DataLoader(PairDataset(pairs), batch_sampler=sampler, collate_fn=Collator(pad_id))
