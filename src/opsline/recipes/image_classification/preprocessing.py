"""Image → tensor, identical in training, evaluation and serving (saved as ``preprocessing.json``).

Two steps, split so training can cache the first:

1. :meth:`Preprocessing.pixels` — RGB ``PIL.Image`` → resized ``uint8`` tensor (C×H×W),
   greyscale when the model takes one channel. Images are resized to a square (``squash``);
   every source here is square or nearly so (CelebA 178×218 is squashed, as in training).
2. :meth:`Preprocessing.normalize` — ``uint8`` batch → float, scaled and standardised.

``tta`` (test-time augmentation) is ``none`` or ``dihedral``: the predictor averages the
probabilities of the 8 rotations/flips of each image — right for data with no "up"
(leaf scans), 8× the inference cost. ``model.tta: auto`` picks ``dihedral`` exactly when
``data.orientation_invariant`` is true.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image as PILImage

    from opsline.recipes.image_classification.config import ImageModelConfig

FILE = "preprocessing.json"


@dataclass
class Preprocessing:
    image_size: int
    channels: int  # 3 (RGB) or 1 (greyscale)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tta: str = "none"  # none | dihedral

    @classmethod
    def from_config(
        cls, data_cfg: Any, model_cfg: ImageModelConfig, imagenet: bool
    ) -> Preprocessing:
        from opsline.recipes.image_classification.backbones import IMAGENET_MEAN, IMAGENET_STD

        channels = int(data_cfg.get("channels", 3))
        size = int(model_cfg.image_size or data_cfg.get("image_size", 224))
        tta: str = model_cfg.tta
        if tta == "auto":
            tta = "dihedral" if data_cfg.get("orientation_invariant", False) else "none"
        if tta not in ("none", "dihedral"):
            from opsline.errors import UsageError

            raise UsageError(f"model.tta must be none, dihedral or auto, not {tta!r}.")
        if imagenet and channels == 3:  # pretrained backbones expect ImageNet statistics
            return cls(size, 3, IMAGENET_MEAN, IMAGENET_STD, tta)
        mean = tuple(float(v) for v in data_cfg.get("mean") or [0.5] * channels)
        std = tuple(float(v) for v in data_cfg.get("std") or [0.5] * channels)
        return cls(size, channels, mean, std, tta)

    def pixels(self, image: PILImage.Image) -> torch.Tensor:
        """RGB image → ``uint8`` tensor C×H×W at ``image_size``."""
        import numpy as np
        import torch
        from PIL import Image

        if self.channels == 1:
            image = image.convert("L")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        if array.ndim == 2:
            array = array[:, :, None]
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()

    def stack(self, images: list[PILImage.Image]) -> torch.Tensor:
        """A ``uint8`` batch N×C×H×W."""
        import torch

        if not images:
            return torch.zeros(
                (0, self.channels, self.image_size, self.image_size), dtype=torch.uint8
            )
        return torch.stack([self.pixels(image) for image in images])

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """``uint8`` (or already 0–1 float) batch → standardised float batch."""
        import torch

        x = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def save(self, out_dir: Path) -> None:
        (Path(out_dir) / FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, model_dir: Path) -> Preprocessing:
        raw = json.loads((Path(model_dir) / FILE).read_text())
        return cls(
            int(raw["image_size"]),
            int(raw["channels"]),
            tuple(raw["mean"]),
            tuple(raw["std"]),
            str(raw.get("tta", "none")),
        )

    def views(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The batch as the model should see it: itself, or its 8 dihedral variants."""
        return self.views_dihedral(batch) if self.tta == "dihedral" else [batch]

    @staticmethod
    def views_dihedral(batch: torch.Tensor) -> list[torch.Tensor]:
        """The 4 rotations by 90° and their mirror images."""
        import torch

        rotations = [torch.rot90(batch, k, dims=(2, 3)) for k in range(4)]
        return rotations + [torch.flip(r, dims=(3,)) for r in rotations]
