"""Held-out loss and perplexity, the base model's beside it, and sample generations.

Perplexity = exp(mean next-token negative log-likelihood) over every predicted position of
the split's token blocks (``lm_data``). The base model's perplexity was measured during
training on the same blocks with the same tokenizer and stored in the model card, so the
reduction compares like with like. Samples use Hugging Face ``generate`` with a fixed seed,
independent of the serving engine, so a serving bug cannot hide a model regression.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from opsline.recipes.base import Evaluation

log = logging.getLogger(__name__)

#: Fixed prompts for the sample generations (speaker line first, the corpus layout).
PROMPTS = (
    "ROMEO:\nBut soft, what light through yonder window breaks?",
    "HAMLET:\nTo be, or not to be, that is the question:",
    "KING HENRY V:\nOnce more unto the breach, dear friends, once more;",
    "LADY MACBETH:\n",
)


def held_out(model: Any, blocks: Any, batch_size: int = 4) -> dict[str, float]:
    """Mean token NLL (``loss``), ``perplexity`` and predicted-token count on ``blocks``."""
    import torch

    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(blocks), int(batch_size)):
            batch = blocks[start : start + int(batch_size)]
            # Full blocks, no padding: every row predicts block_size - 1 tokens, so the
            # model's mean loss times that count is the batch's summed NLL.
            count = batch.size(0) * (batch.size(1) - 1)
            total += float(model(input_ids=batch, labels=batch).loss) * count
            tokens += count
    model.train(was_training)
    if tokens == 0:
        return {"loss": float("nan"), "perplexity": float("nan"), "tokens": 0.0}
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": float(tokens)}


def generate_samples(
    model: Any,
    tokenizer: Any,
    prompts: tuple[str, ...] | list[str],
    *,
    max_new_tokens: int,
    seed: int,
    temperature: float,
    top_p: float,
    top_k: int,
) -> list[str]:
    """One sampled continuation per prompt (seeded per prompt, so reproducible)."""
    import torch

    outputs = []
    model.eval()
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        if ids.size(1) == 0:  # an empty prompt starts from the end-of-text separator
            ids = torch.tensor([[int(tokenizer.eos_token_id)]])
        torch.manual_seed(int(seed))
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                max_new_tokens=int(max_new_tokens),
                temperature=float(temperature),
                top_p=float(top_p),
                top_k=int(top_k),
                pad_token_id=int(tokenizer.pad_token_id),
                eos_token_id=int(tokenizer.eos_token_id),
            )
        outputs.append(tokenizer.decode(out[0, ids.size(1) :], skip_special_tokens=True))
    return outputs


def samples_markdown(
    prompts: list[str] | tuple[str, ...], outputs: list[str], settings: str
) -> str:
    """The samples as a small Markdown report (prompt in bold, continuation quoted)."""
    lines = ["# Sample generations", "", f"Settings: {settings}", ""]
    for prompt, text in zip(prompts, outputs, strict=True):
        lines += [f"## Prompt {prompt.splitlines()[0]!r}", "", "```text", prompt + text, "```", ""]
    return "\n".join(lines)


def evaluate(cfg: Any, predictor: Any, frame: Any) -> Evaluation:
    """Perplexity of ``predictor.model`` on ``frame`` plus the base model's, and samples."""
    from opsline.recipes.text_generation.lm_data import blocks_of, split_key

    ecfg = cfg.recipe.get("eval") or {}
    card = getattr(predictor, "card", None) or {}
    block_size = int(card.get("block_size") or cfg.model.block_size)
    max_blocks = ecfg.get("max_blocks")
    texts = list(frame["clean_text"])
    blocks = blocks_of(predictor.tokenizer, texts, block_size, max_blocks)
    result = held_out(predictor.model, blocks, int(ecfg.get("batch_size", 4)))
    metrics = {
        "loss": result["loss"],
        "perplexity": result["perplexity"],
        "tokens": result["tokens"],
        "blocks": float(len(blocks)),
    }
    base = (card.get("base_eval") or {}).get(split_key(texts, block_size, max_blocks))
    if base:  # only when measured on these very tokens; otherwise omitted, never guessed
        metrics["base_loss"] = float(base["loss"])
        metrics["base_perplexity"] = float(base["perplexity"])
        metrics["perplexity_reduction"] = 1.0 - metrics["perplexity"] / metrics["base_perplexity"]
    elif card.get("base_eval"):
        log.warning(
            "No base-model perplexity for these %d blocks: the base model was measured "
            "on other blocks (training used block_size/max_blocks %s); evaluate with "
            "those settings to compare.",
            len(blocks),
            card.get("eval"),
        )
    texts_out = {}
    n = int(ecfg.get("samples", len(PROMPTS)))
    if n > 0:
        prompts = list(PROMPTS[:n])
        options = {
            "max_new_tokens": int(ecfg.get("sample_tokens", 48)),
            "seed": int(cfg.get("seed", 42)),
            "temperature": float(ecfg.get("temperature", 0.7)),
            "top_p": float(ecfg.get("top_p", 0.95)),
            "top_k": int(ecfg.get("top_k", 50)),
        }
        outputs = generate_samples(predictor.model, predictor.tokenizer, prompts, **options)
        texts_out["samples.md"] = samples_markdown(
            prompts, outputs, ", ".join(f"{k}={v}" for k, v in options.items())
        )
    return Evaluation(metrics=metrics, texts=texts_out)
