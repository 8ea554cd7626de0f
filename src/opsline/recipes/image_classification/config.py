"""Typed settings of the image_classification ``model`` group
(``configs/model/image_classification/*.yaml``).

One dataclass for every model: the timm backbones use ``arch``/``pretrained``/``head_norm``,
the small CNN ``channels``/``convs``/``pool``/``hidden``; the training settings are shared.
:func:`opsline.config.load_config` checks the composed node against it, training reads it
with :func:`opsline.config.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ImageModelConfig:
    name: str = "mobilenetv2"  # small_cnn, or a timm backbone configured by `arch`
    # -- timm backbones (see backbones.py) --
    arch: str | None = None  # the timm model name, e.g. mobilenetv2_100
    pretrained: Literal["package", "hub", "auto", "none"] = "none"
    head_norm: bool = False  # BatchNorm (no affine) on the pooled features
    # -- small_cnn --
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # one block each
    convs: int = 1  # conv layers per block
    pool: Literal["avg", "flatten"] = "avg"
    hidden: int = 0  # width of a hidden dense layer before the classifier (0 = none)
    # -- shared --
    dropout: float = 0.0
    image_size: int | None = None  # None = data.image_size
    fit: Literal["lightning", "probe"] = "lightning"
    probe_c: float = 0.01  # probe: inverse L2 strength of the logistic regression
    backbone_lr: float = 1.0e-4
    head_lr: float = 1.0e-3
    weight_decay: float = 1.0e-2
    freeze_epochs: int = 0  # lightning: epochs with the backbone frozen; -1 = always
    augment: Literal["none", "light", "moderate", "heavy"] = "none"
    label_smoothing: float = 0.0
    scheduler: Literal["cosine", "none"] = "cosine"
    batch_size: int = 16
    max_epochs: int = 10
    patience: int | None = None  # early stopping on `monitor` (None = train all epochs)
    monitor: str = "val_loss"
    checkpoint: Literal["best", "last"] = "best"
    threshold: float = 0.5  # multi-label decision threshold
    tta: Literal["none", "dihedral", "auto"] = "none"  # auto: dihedral if orientation-free
