"""A one-layer Lightning regressor, its data and a CPU trainer config: the smallest real fit,
shared by the trainer factory, training session and training telemetry tests."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

CPU = {
    "accelerator": "cpu",
    "devices": 1,
    "strategy": "auto",
    "precision": "32-true",
    "profiler": None,
    "enable_progress_bar": False,
    "deterministic": True,
    "max_epochs": None,
    "fast_dev_run": False,
}


def make_cfg(seed: int = 7, **trainer: Any) -> DictConfig:
    """The run config a recipe would get, with these trainer settings over ``CPU``."""
    return OmegaConf.create({"seed": seed, "trainer": {**CPU, **trainer}})


def tiny_module(lr: float = 0.1, fail_at_step: int | None = None) -> Any:
    """y = w·x + b; raises at ``fail_at_step`` (a training that crashes mid-fit)."""
    import lightning.pytorch as pl  # imported lazily, like the real recipes

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(3, 1)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            if fail_at_step is not None and self.global_step >= fail_at_step:
                raise RuntimeError("boom")
            x, y = batch
            loss = nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            self.log("val_loss", nn.functional.mse_loss(self.layer(x).squeeze(-1), y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=lr)

    return Module()


def loaders() -> tuple[DataLoader, DataLoader]:
    """64 noiseless rows of y = x·[1, -2, 0.5]: training batches of 16, one validation batch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    data = TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5]))
    return DataLoader(data, batch_size=16), DataLoader(data, batch_size=64)
