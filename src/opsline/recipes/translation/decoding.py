"""Batched generation: many sentences in few ``generate`` calls, sorted by length.

Shared by the server (``predictor``), evaluation and the per-epoch ``val_bleu``, so all three
decode the same way (same prefix, same truncation, same special-token handling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def translate(
    network: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    num_beams: int = 1,
    max_new_tokens: int = 64,
    batch_size: int = 64,
    prefix: str = "",
    max_source_tokens: int = 128,
) -> list[str]:
    """Translations of ``texts`` in order (greedy when ``num_beams == 1``)."""
    import torch

    if not texts:
        return []
    # The decoder's position table bounds the output (its start token takes one position):
    # a request may ask for up to the API's maximum, a small model holds fewer.
    positions = getattr(getattr(network, "config", None), "max_position_embeddings", None)
    if positions:
        max_new_tokens = min(int(max_new_tokens), int(positions) - 1)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                enc = tokenizer(
                    [prefix + texts[i] for i in chunk],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=max_source_tokens,
                )
                generated = network.generate(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    num_beams=int(num_beams),
                    max_new_tokens=int(max_new_tokens),
                    do_sample=False,
                    early_stopping=num_beams > 1,
                )
                decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
                for i, text in zip(chunk, decoded, strict=True):
                    out[i] = text.strip()
    finally:
        network.train(was_training)
    return out
