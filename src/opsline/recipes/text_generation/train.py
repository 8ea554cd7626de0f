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

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from opsline.errors import UsageError
from opsline.recipes.base import TrainedModel
from opsline.recipes.text_generation.card import write_card
from opsline.training.trainer import build_trainer, finish_fit

TEXT = "clean_text"


def _threads(mcfg: Any) -> int:
    """``model.num_threads``, or every core this process may use (2 on the reference box)."""
    if mcfg.get("num_threads"):
        return int(mcfg.num_threads)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def _max_epochs(cfg: Any) -> int:
    """``model.max_epochs``; when null, unbounded (-1) under a ``trainer.max_steps`` budget,
    else one epoch."""
    if cfg.model.get("max_epochs") is not None:
        return int(cfg.model.max_epochs)
    return -1 if (cfg.trainer.get("max_steps") or -1) > 0 else 1


def kind_of(mcfg: Any, source: str) -> str:
    """``tiny`` (from scratch), ``lora`` or ``full`` (fine-tuned)."""
    if source == "tiny":
        return "tiny"
    return "lora" if (mcfg.get("lora") or {}).get("enabled") else "full"


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


def train_text_generation(cfg: Any, dataset: Any, run: Any, out_dir: Path) -> TrainedModel:
    """Measure the base model, train on the train split (val for monitoring), export."""
    import torch

    from opsline.recipes.text_generation import model as lm
    from opsline.recipes.text_generation.lm_data import blocks_of, loader
    from opsline.recipes.text_generation.module import CausalLMModule, StepMetrics

    mcfg, ecfg = cfg.model, cfg.recipe.get("eval") or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(_threads(mcfg))
    block_size = int(mcfg.block_size)
    eval_blocks, eval_batch = ecfg.get("max_blocks"), int(ecfg.get("batch_size", 4))
    frames = {split: dataset.frame(split) for split in ("train", "val", "test")}
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="opsline-text-generation-") as work:
        trainer = build_trainer(
            cfg,
            default_max_epochs=_max_epochs(cfg),
            work_dir=Path(work),
            run=run,
            checkpoint=False,
            callbacks=[StepMetrics(run)],
        )
        network, tokenizer, base_name, source = lm.load_base(mcfg, frames["train"][TEXT])
        kind = kind_of(mcfg, source)
        loaded = time.perf_counter()
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
        base_seconds = time.perf_counter() - loaded
        if base_eval:  # logged at once: a run that dies mid-training says where it began
            run.log_metrics(
                {f"base_{v['split']}_perplexity": v["perplexity"] for v in base_eval.values()}
            )
        if kind == "lora":
            network = lm.add_lora(network, mcfg.lora)
        network.train()
        trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
        module = CausalLMModule(
            network,
            lr=float(mcfg.lr),
            weight_decay=float(mcfg.weight_decay),
            warmup_steps=int(mcfg.warmup_steps),
            min_lr_ratio=float(mcfg.get("min_lr_ratio", 0.1)),
            grad_clip=float(mcfg.get("grad_clip", 1.0)),
        )
        fit_started, fit_cpu = time.perf_counter(), time.process_time()
        trainer.fit(
            module,
            loader(train_blocks, int(mcfg.batch_size), True, int(cfg.seed)),
            loader(val_blocks, eval_batch, False),
        )
        fit_seconds, fit_cpu = time.perf_counter() - fit_started, time.process_time() - fit_cpu
        finish_fit(trainer, module, run, Path(work), restore_best=False)
    network = lm.merged(module.network).cpu().eval()
    _export(network, tokenizer, out_dir)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    parameters = sum(p.numel() for p in network.parameters())
    steps = int(trainer.global_step)
    tokens_trained = (
        steps
        * int(mcfg.batch_size)
        * block_size
        * int(cfg.trainer.get("accumulate_grad_batches") or 1)
    )
    run.log_metrics(
        {
            "train_seconds": seconds,
            "train_cpu_seconds": cpu_seconds,
            "fit_seconds": fit_seconds,
            "fit_cpu_seconds": fit_cpu,
            "base_eval_seconds": base_seconds,
            "optimizer_steps": steps,
            "train_tokens_seen": tokens_trained,
            "parameters": parameters,
            "trainable_parameters": trainable,
        }
    )
    lora = dict(mcfg.lora) if kind == "lora" else None
    write_card(
        out_dir,
        kind,
        base_model=base_name,
        context_limit=lm.context_limit(network, block_size, mcfg.get("context_limit")),
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
        training={
            "steps": steps,
            "tokens_seen": tokens_trained,
            "trainable_parameters": trainable,
            "lr": float(mcfg.lr),
            "batch_size": int(mcfg.batch_size),
            "lora": _plain(lora),
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1),
            "fit_seconds": round(fit_seconds, 1),
            "threads": torch.get_num_threads(),
        },
    )
    return TrainedModel(model_dir=out_dir, kind=kind)


def _layers(config: Any) -> int | None:
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)


def _plain(value: Any) -> Any:
    """OmegaConf containers → plain JSON-able Python."""
    if value is None:
        return None
    from omegaconf import OmegaConf

    return {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in value.items()}


def _export(network: Any, tokenizer: Any, out_dir: Path) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars are noise in CLI output
    network.generation_config.pad_token_id = int(tokenizer.pad_token_id)
    network.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
