"""Fine-tune (full or LoRA) or train from scratch, then export a plain causal-LM directory.

Order matters for an honest comparison: the base model's held-out perplexity is measured
first, with the tokenizer and token blocks the fine-tuned model will be scored on, and
stored in the card. Training runs through the shared ``build_trainer`` so the live training
metrics (steps, losses, throughput) work as for every recipe. No checkpoints are written
(``checkpoint=False``): a 135M-parameter model with AdamW state is ~1.6 GB per save, and with
a step budget and cosine decay the final weights are the ones to keep.

Export = ``model.safetensors`` + ``config.json`` + ``generation_config.json``, the tokenizer
files, and ``opsline_model.json`` (see ``card``). LoRA adapters are merged first, so serving
needs neither peft nor the base model.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.config import settings
from opsline.errors import UsageError
from opsline.recipes.base import TrainedModel
from opsline.recipes.text_generation.card import write_card
from opsline.recipes.text_generation.config import TextModelConfig
from opsline.training.fit import Stopwatch, TrainingSession, count_parameters

if TYPE_CHECKING:  # pragma: no cover
    from opsline.tracking.runs import TrainingRun

TEXT = "clean_text"


def _threads(mcfg: TextModelConfig) -> int:
    """``model.num_threads``, or every core this process may use (2 on the reference box)."""
    if mcfg.num_threads:
        return mcfg.num_threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def _max_epochs(mcfg: TextModelConfig, trainer_cfg: Any) -> int:
    """``model.max_epochs``; when null, unbounded (-1) under a ``trainer.max_steps`` budget,
    else one epoch."""
    if mcfg.max_epochs is not None:
        return mcfg.max_epochs
    return -1 if (trainer_cfg.get("max_steps") or -1) > 0 else 1


def kind_of(mcfg: TextModelConfig, source: str) -> str:
    """``tiny`` (from scratch), ``lora`` or ``full`` (fine-tuned)."""
    if source == "tiny":
        return "tiny"
    return "lora" if mcfg.lora.enabled else "full"


def base_evaluation(
    model: Any,
    tokenizer: Any,
    frames: dict[str, Any],
    block_size: int,
    max_blocks: int | None,
    batch_size: int,
) -> dict[str, dict[str, Any]]:
    """Held-out figures of the untouched model per split, keyed by ``split_key``."""
    from opsline.recipes.text_generation.evaluation import held_out
    from opsline.recipes.text_generation.lm_data import blocks_of, split_key

    out = {}
    for split, frame in frames.items():
        texts = list(frame[TEXT])
        result = held_out(model, blocks_of(tokenizer, texts, block_size, max_blocks), batch_size)
        out[split_key(texts, block_size, max_blocks)] = {"split": split, **result}
    return out


def train_text_generation(cfg: Any, dataset: Any, run: TrainingRun, out_dir: Path) -> TrainedModel:
    """Measure the base model, train on the train split (val for monitoring), export."""
    import torch

    from opsline.recipes.text_generation import model as lm
    from opsline.recipes.text_generation.lm_data import blocks_of, loader
    from opsline.recipes.text_generation.module import CausalLMModule, StepMetrics

    mcfg, ecfg = settings(TextModelConfig, cfg.model), cfg.recipe.get("eval") or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(_threads(mcfg))
    block_size = mcfg.block_size
    eval_blocks, eval_batch = ecfg.get("max_blocks"), int(ecfg.get("batch_size", 4))
    frames = {split: dataset.frame(split) for split in ("train", "val", "test")}
    with TrainingSession(cfg, run, "text-generation") as session:
        session.build_trainer(
            default_max_epochs=_max_epochs(mcfg, cfg.trainer),
            checkpoint=False,
            callbacks=[StepMetrics(run)],
        )
        network, tokenizer, base_name, source = lm.load_base(mcfg, frames["train"][TEXT])
        kind = kind_of(mcfg, source)
        loaded = Stopwatch()
        train_blocks = blocks_of(tokenizer, frames["train"][TEXT], block_size)
        val_blocks = blocks_of(tokenizer, frames["val"][TEXT], block_size, eval_blocks)
        if len(train_blocks) == 0 or len(val_blocks) == 0:
            raise UsageError(
                f"The train or val split holds fewer than model.block_size="
                f"{block_size} tokens; lower it or prepare more rows."
            )
        # The tiny model's "base" is random weights: its perplexity is the vocabulary size,
        # a meaningless comparison, so only pretrained bases are measured.
        base_eval = (
            {}
            if kind == "tiny"
            else base_evaluation(
                network,
                tokenizer,
                {s: frames[s] for s in ("val", "test")},
                block_size,
                eval_blocks,
                eval_batch,
            )
        )
        base_seconds = loaded.seconds
        if base_eval:  # logged at once: a run that dies mid-training says where it began
            run.log_metrics(
                {f"base_{v['split']}_perplexity": v["perplexity"] for v in base_eval.values()}
            )
        if kind == "lora":
            network = lm.add_lora(network, mcfg.lora)
        network.train()
        trainable = count_parameters(network, trainable_only=True)
        module = CausalLMModule(
            network,
            lr=mcfg.lr,
            weight_decay=mcfg.weight_decay,
            warmup_steps=mcfg.warmup_steps,
            min_lr_ratio=mcfg.min_lr_ratio,
            grad_clip=mcfg.grad_clip,
        )
        session.fit(
            module,
            loader(train_blocks, mcfg.batch_size, True, int(cfg.seed)),
            loader(val_blocks, eval_batch, False),
        )
        # No checkpoints (see the module docstring): the final weights are the ones kept.
        network = lm.merged(module.network).cpu().eval()
        _export(network, tokenizer, out_dir)
        result = session.finish()  # the clocks include the export, as they always have
    parameters = count_parameters(network)
    steps = result.steps or 0
    tokens_trained = (
        steps * mcfg.batch_size * block_size * int(cfg.trainer.get("accumulate_grad_batches") or 1)
    )
    run.log_metrics(
        result.metrics(
            parameters=parameters,
            fit_seconds=result.fit_seconds,
            fit_cpu_seconds=result.fit_cpu_seconds,
            base_eval_seconds=base_seconds,
            optimizer_steps=steps,
            train_tokens_seen=tokens_trained,
            trainable_parameters=trainable,
        )
    )
    lora = dataclasses.asdict(mcfg.lora) if kind == "lora" else None
    write_card(
        out_dir,
        kind,
        base_model=base_name,
        context_limit=lm.context_limit(network, block_size, mcfg.context_limit),
        block_size=block_size,
        eval={"max_blocks": eval_blocks, "block_size": block_size},
        base_eval=base_eval,
        tokenizer={
            "vocab_size": len(tokenizer),
            "eos_id": int(tokenizer.eos_token_id),
            "pad_id": int(tokenizer.pad_token_id),
        },
        architecture={
            "model_type": network.config.model_type,
            "parameters": parameters,
            "layers": _layers(network.config),
            "hidden_size": getattr(network.config, "hidden_size", None),
        },
        data={
            "source": str(cfg.recipe.data.get("source")),
            "version": getattr(dataset, "version", None),
            "train_rows": len(frames["train"]),
            "train_blocks": len(train_blocks),
        },
        training=result.card(
            steps=steps,
            tokens_seen=tokens_trained,
            trainable_parameters=trainable,
            lr=mcfg.lr,
            batch_size=mcfg.batch_size,
            lora=lora,
            fit_seconds=round(result.fit_seconds, 1),
            threads=torch.get_num_threads(),
        ),
    )
    return TrainedModel(model_dir=out_dir, kind=kind)


def _layers(config: Any) -> int | None:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)


def _export(network: Any, tokenizer: Any, out_dir: Path) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars are noise in CLI output
    network.generation_config.pad_token_id = int(tokenizer.pad_token_id)
    network.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
