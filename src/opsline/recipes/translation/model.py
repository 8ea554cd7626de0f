"""The seq2seq network (a Hugging Face encoder–decoder) and its Lightning training module.

From scratch: a Marian-style transformer sized for CPU (``configs/model/translation``).
Fine-tuning: ``model.pretrained=<hub id or local dir>`` loads any
``AutoModelForSeq2SeqLM`` checkpoint (t5-small, Helsinki-NLP/opus-mt-da-en, a test's tiny
directory) through the same module; only where the weights come from differs.

Loss: token cross-entropy with label smoothing over the labels, whose padding is -100 so
pad positions never count (the reference system trained on its padding).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from opsline.recipes.translation.config import TranslationModelConfig

IGNORE_INDEX = -100


def build_config(mcfg: TranslationModelConfig, vocab_size: int, pad_id: int, eos_id: int) -> Any:
    """A ``MarianConfig`` from the model config (shared embeddings, tied output layer)."""
    from transformers import MarianConfig

    return MarianConfig(
        vocab_size=int(vocab_size),
        decoder_vocab_size=int(vocab_size),
        d_model=mcfg.d_model,
        encoder_layers=mcfg.encoder_layers,
        decoder_layers=mcfg.decoder_layers,
        encoder_attention_heads=mcfg.heads,
        decoder_attention_heads=mcfg.heads,
        encoder_ffn_dim=mcfg.ffn_dim,
        decoder_ffn_dim=mcfg.ffn_dim,
        dropout=mcfg.dropout,
        attention_dropout=mcfg.attention_dropout,
        activation_dropout=mcfg.activation_dropout,
        activation_function=mcfg.activation,
        max_position_embeddings=mcfg.max_positions,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        decoder_start_token_id=pad_id,
        forced_eos_token_id=eos_id,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        is_encoder_decoder=True,
    )


def build_network(mcfg: TranslationModelConfig, tokenizer: Any) -> Any:
    """A fresh Marian model, or the ``model.pretrained`` checkpoint."""
    from transformers import AutoModelForSeq2SeqLM, MarianMTModel

    if mcfg.pretrained:
        # from_pretrained returns the network in eval mode (dropout off): we fine-tune it.
        return AutoModelForSeq2SeqLM.from_pretrained(mcfg.pretrained).train()
    config = build_config(mcfg, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    return MarianMTModel(config)


def mask_padding(labels: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Labels with every pad position set to -100 (ignored by the loss)."""
    return labels.masked_fill(labels == pad_id, IGNORE_INDEX)


def warmup_decay(step: int, warmup: int, total: int, min_ratio: float = 0.05) -> float:
    """Linear warmup to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class Seq2SeqModule(pl.LightningModule):
    """Trains ``network``; logs ``train_loss``, ``val_loss`` and (optionally) ``val_bleu``."""

    def __init__(
        self,
        network: Any,
        *,
        lr: float,
        weight_decay: float,
        warmup_steps: int,
        label_smoothing: float,
        grad_clip: float,
        pad_id: int,
        bleu_fn: Any = None,
    ):
        super().__init__()
        self.network = network
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.grad_clip = grad_clip
        self.pad_id = pad_id
        self.smoothed = nn.CrossEntropyLoss(
            ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing
        )
        self.plain = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        self.bleu_fn = bleu_fn  # callable(network) -> BLEU on a val subset, or None

    def _logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # Passing labels lets the model build decoder inputs (labels shifted right, -100
        # read as pad); the loss is ours, for label smoothing.
        return self.network(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self._logits(batch)
        loss = self.smoothed(logits.reshape(-1, logits.size(-1)), batch["labels"].reshape(-1))
        # sync_dist: under DDP the mean over every rank's shard (a no-op in one process).
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=batch["input_ids"].size(0),
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self._logits(batch)
        loss = self.plain(logits.reshape(-1, logits.size(-1)), batch["labels"].reshape(-1))
        self.log(
            "val_loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["input_ids"].size(0),
            sync_dist=True,
        )

    def on_validation_epoch_end(self) -> None:
        if self.bleu_fn is not None and not self.trainer.sanity_checking:
            self.log("val_bleu", float(self.bleu_fn(self.network)), prog_bar=True)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.grad_clip)

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.lr,
            betas=(0.9, 0.98),
            eps=1e-8,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.warmup_steps, max(1, total // 4))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_decay(step, warmup, total)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
