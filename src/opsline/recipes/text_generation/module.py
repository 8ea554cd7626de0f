"""The Lightning module that fine-tunes (or trains from scratch) a Hugging Face causal LM.

Loss: the model's own next-token cross-entropy on full token blocks (``labels = input_ids``;
the model shifts them). Optimiser: AdamW with decoupled weight decay on matrices only (norm
gains and biases are not pulled to zero), linear warmup then cosine decay to
``min_lr_ratio`` over the run's optimizer steps — with a step budget (``trainer.max_steps``)
the schedule ends exactly when training does.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Learning-rate factor: linear warmup to 1, then cosine decay to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class CausalLMModule(pl.LightningModule):
    """Trains ``network``; logs ``train_loss`` (per step and epoch) and ``val_loss``."""

    def __init__(
        self,
        network: Any,
        *,
        lr: float,
        weight_decay: float,
        warmup_steps: int,
        min_lr_ratio: float = 0.1,
        grad_clip: float = 1.0,
    ):
        super().__init__()
        self.network = network
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.warmup_steps, self.min_lr_ratio = int(warmup_steps), float(min_lr_ratio)
        self.grad_clip = float(grad_clip)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["input_ids"]
        return self.network(input_ids=ids, labels=ids).loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log(
            "train_loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["input_ids"].size(0),
        )
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # sync_dist: under DDP checkpoints watch every rank's shard (no-op in one process);
        # train_loss (logged per step) is left rank-local: no extra all-reduce per step.
        self.log(
            "val_loss",
            self._loss(batch),
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["input_ids"].size(0),
            sync_dist=True,
        )

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.parameters() if p.requires_grad], self.grad_clip
            )

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:  # LoRA: only the adapters
                (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.warmup_steps, max(1, total // 4))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, total, self.min_lr_ratio)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class StepMetrics(Callback):
    """``steps/val_loss`` and ``steps/train_loss`` to the run after each validation, step =
    global step: a fine-tune is often a fraction of one epoch, so per-epoch points (what
    ``RunMetricsCallback`` sends) would be one or two dots."""

    def __init__(self, run: Any):
        super().__init__()
        self.run = run

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.run is None:
            return
        metrics = {
            name: float(trainer.callback_metrics[key])
            for key, name in (
                ("val_loss", "steps/val_loss"),
                ("train_loss_step", "steps/train_loss"),
            )
            if key in trainer.callback_metrics
        }
        if metrics:
            self.run.log_metrics(metrics, step=int(trainer.global_step))
