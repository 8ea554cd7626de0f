"""Train the MLP (Lightning) and export it as safetensors + JSON preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from opsline.config import settings
from opsline.recipes.base import TrainedModel
from opsline.recipes.house_price import network
from opsline.recipes.house_price.card import WEIGHTS, write_card
from opsline.recipes.house_price.config import MLPConfig
from opsline.recipes.house_price.data import TARGET
from opsline.recipes.house_price.features import RAW_COLUMNS, Preprocessor
from opsline.training.fit import TrainingSession, count_parameters

if TYPE_CHECKING:  # pragma: no cover
    from opsline.tracking.runs import TrainingRun

LOSSES = {"mse": nn.MSELoss, "huber": lambda: nn.HuberLoss(delta=1.0)}


class PriceRegressor(pl.LightningModule):
    """Regresses the standardized log price; ``val_rmsle`` is in log-price units."""

    def __init__(
        self,
        arch: dict[str, Any],
        lr: float,
        weight_decay: float,
        loss: str,
        target_std: float,
        lr_patience: int,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = network.build(arch)
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.loss_fn = LOSSES[loss]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        # sync_dist: under DDP each rank sees a shard; epoch figures are the mean over ranks
        # (a no-op in one process), so early stopping and checkpoints watch the whole split.
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True
        )
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        mse = nn.functional.mse_loss(self(x), y)
        self.log("val_loss", mse, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        # The val loader is one batch, so this is exactly the val RMSLE of the epoch (under
        # DDP the mean of the ranks' halves; the registered figures come from evaluate()).
        self.log(
            "val_rmsle",
            mse.sqrt() * self.hparams.target_std,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(x),
            sync_dist=True,
        )

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=self.hparams.lr_patience
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def _tensors(pre: Preprocessor, frame) -> TensorDataset:
    x = torch.from_numpy(pre.matrix(frame))
    y = torch.from_numpy(pre.encode_target(frame[TARGET].to_numpy()).astype(np.float32))
    return TensorDataset(x, y)


def train_mlp(cfg: Any, dataset: Any, run: TrainingRun, out_dir: Path) -> TrainedModel:
    """Fit preprocessing on train, train with early stopping on val, export."""
    from safetensors.torch import save_file

    mcfg = settings(MLPConfig, cfg.model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val = dataset.frame("train"), dataset.frame("val")
    pre = Preprocessor.fit(train)
    train_set, val_set = _tensors(pre, train), _tensors(pre, val)
    arch = network.architecture(train_set.tensors[0].shape[1], mcfg)
    with TrainingSession(cfg, run, "mlp") as session:
        session.build_trainer(default_max_epochs=mcfg.max_epochs, patience=mcfg.patience)
        module = PriceRegressor(
            arch, mcfg.lr, mcfg.weight_decay, mcfg.loss, pre.target_std, mcfg.lr_patience
        )
        session.fit(
            module,
            DataLoader(train_set, batch_size=mcfg.batch_size, shuffle=True),
            DataLoader(val_set, batch_size=len(val_set)),
        )
        result = session.finish()
    run.log_metrics(result.metrics(parameters=count_parameters(module.net)))
    state = {k: v.detach().cpu().contiguous() for k, v in module.net.state_dict().items()}
    save_file(state, str(out_dir / WEIGHTS["mlp"]))
    pre.save(out_dir)
    write_card(
        out_dir,
        "mlp",
        architecture=arch,
        feature_schema={"raw_columns": RAW_COLUMNS, "model_inputs": pre.features},
        target={"column": TARGET, "transform": "standardized log"},
        data_version=getattr(dataset, "version", None),
        training=result.card(best_epoch=result.best_epoch),
    )
    return TrainedModel(model_dir=out_dir, kind="mlp")
