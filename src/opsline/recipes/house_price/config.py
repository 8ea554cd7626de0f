"""Typed settings of the house_price ``model`` group (``configs/model/house_price/*.yaml``).

One dataclass per model kind, picked by ``model.name``; :func:`opsline.config.load_config`
checks the composed node against it, training reads it with :func:`opsline.config.settings`.
Defaults are the shipped YAML's values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class MLPConfig:
    """The PyTorch MLP (``model=mlp``): see ``mlp.py`` and ``network.py``."""

    name: Literal["mlp"] = "mlp"
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.2
    shortcut: bool = True  # a linear path beside the hidden layers
    loss: Literal["mse", "huber"] = "huber"
    lr: float = 3.0e-4
    weight_decay: float = 1.0e-2  # AdamW (decoupled)
    lr_patience: int = 5  # epochs without val improvement before halving the learning rate
    batch_size: int = 64
    max_epochs: int = 200  # trainer.max_epochs overrides it when set
    patience: int = 20  # early stopping on val_loss


@dataclass
class GBMConfig:
    """LightGBM on the log price (``model=gbm``): see ``gbm.py``."""

    name: Literal["gbm"] = "gbm"
    n_estimators: int = 2000  # upper bound; early stopping on val picks the best round
    early_stopping_rounds: int = 100
    num_threads: int = 2
    #: Passed to ``lightgbm.train`` (sklearn-style aliases are accepted), unchecked here.
    params: dict[str, Any] = field(default_factory=dict)


MODEL_CONFIGS: dict[str, type] = {"mlp": MLPConfig, "gbm": GBMConfig}
