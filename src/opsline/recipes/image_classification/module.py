"""The Lightning module: loss per task, two learning rates, and the freeze/unfreeze schedule.

The reference system meant to train the pretrained backbone slower than the new head but
built one optimizer group, so everything trained at 1e-5. Here the groups are explicit:
``param_groups[0]`` is the backbone at ``model.backbone_lr``, ``param_groups[1]`` the head at
``model.head_lr`` (tested). :class:`FreezeSchedule` keeps the backbone frozen — no gradients
*and* BatchNorm statistics frozen (eval mode), which matters with 40-image training sets —
for the first ``model.freeze_epochs`` epochs, then fine-tunes everything.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn

from opsline.recipes.image_classification.augment import augment
from opsline.recipes.image_classification.backbones import head_module, split_parameters
from opsline.recipes.image_classification.preprocessing import Preprocessing


class ImageClassifier(pl.LightningModule):
    """Batches are ``(uint8 images, targets)``; augmentation and normalisation happen here."""

    def __init__(
        self,
        net: nn.Module,
        pre: Preprocessing,
        task: str,
        *,
        backbone_lr: float,
        head_lr: float,
        weight_decay: float,
        augment_level: str = "none",
        orientation_invariant: bool = False,
        background: float = 0.0,
        label_smoothing: float = 0.0,
        scheduler: str = "cosine",
        max_epochs: int = 1,
    ):
        super().__init__()
        self.net = net
        self.pre = pre
        self.task = task
        self.save_hyperparameters(ignore=["net", "pre"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, y.float())
        return F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)

    def _accuracy(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "multilabel":  # mean per-attribute accuracy
            return ((logits > 0).long() == y.long()).float().mean()
        return (logits.argmax(1) == y).float().mean()

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = x.float() / 255.0
        x = augment(
            x,
            self.hparams.augment_level,
            orientation_invariant=self.hparams.orientation_invariant,
            background=self.hparams.background,
        )
        logits = self(self.pre.normalize(x))
        loss = self._loss(logits, y)
        # sync_dist: under DDP the mean over every rank's shard (a no-op in one process).
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True
        )
        self.log(
            "train_acc",
            self._accuracy(logits, y),
            on_step=False,
            on_epoch=True,
            batch_size=len(x),
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(self.pre.normalize(x))
        self.log(
            "val_loss",
            self._loss(logits, y),
            on_epoch=True,
            prog_bar=True,
            batch_size=len(x),
            sync_dist=True,
        )
        self.log(
            "val_acc",
            self._accuracy(logits, y),
            on_epoch=True,
            prog_bar=True,
            batch_size=len(x),
            sync_dist=True,
        )

    def configure_optimizers(self):
        backbone, head = split_parameters(self.net)
        groups = [
            {"params": backbone, "lr": float(self.hparams.backbone_lr), "name": "backbone"},
            {"params": head, "lr": float(self.hparams.head_lr), "name": "head"},
        ]
        optimizer = torch.optim.AdamW(groups, weight_decay=float(self.hparams.weight_decay))
        if self.hparams.scheduler == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(1, int(self.hparams.max_epochs))
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "epoch"},
            }
        return optimizer


def set_backbone_trainable(net: nn.Module, trainable: bool) -> None:
    """Freeze (no grads, BatchNorm in eval mode) or unfreeze everything but the head."""
    head = head_module(net)
    head_params = {id(p) for p in head.parameters()}
    for param in net.parameters():
        if id(param) not in head_params:
            param.requires_grad_(trainable)
    head_modules = {id(m) for m in head.modules()}
    for module in net.modules():
        if id(module) not in head_modules and module is not net:
            module.train(trainable and net.training)


class FreezeSchedule(Callback):
    """Backbone frozen for the first ``epochs`` epochs (0 = never, -1 = always)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = int(epochs)

    def frozen(self, epoch: int) -> bool:
        return self.epochs < 0 or epoch < self.epochs

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        set_backbone_trainable(pl_module.net, not self.frozen(trainer.current_epoch))

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        # Lightning may put the module back in train mode after validation: re-freeze BN.
        if self.frozen(trainer.current_epoch):
            set_backbone_trainable(pl_module.net, False)
