"""Load an exported image classifier and predict per request batch or per dataset frame.

``preprocess`` turns already-decoded request images into one normalised batch, ``forward``
returns probabilities (softmax or sigmoid) as numpy — the part an ONNX backend would
replace — and ``postprocess`` names the classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import ModelLoadError
from opsline.recipes.base import Predictor
from opsline.recipes.image_classification.card import WEIGHTS, read_card
from opsline.recipes.image_classification.preprocessing import Preprocessing
from opsline.recipes.image_classification.schemas import ImageRequest, ImageResponse, LabelScore

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

CHUNK = 64  # images per forward pass when scoring a whole split (×8 views with TTA)


class ImagePredictor(Predictor):
    def __init__(self, model_dir: Path, card: dict[str, Any], pre: Preprocessing, net: Any):
        self.model_dir = Path(model_dir)
        self.card = card
        self.pre = pre
        self.net = net
        self.task: str = card["task"]
        self.classes: list[str] = list(card["classes"])
        self.threshold = float(card.get("threshold", 0.5))
        self.kind = str(card["kind"])
        self.info = {"recipe": card["recipe"], "kind": self.kind, "task": self.task,
                     "classes": self.classes, "image_size": pre.image_size,
                     "data_name": card.get("data_name"), "data_version": card.get("data_version"),
                     "training": card.get("training", {})}

    @classmethod
    def load(cls, model_dir: Path) -> ImagePredictor:
        from safetensors.torch import load_file

        from opsline.recipes.image_classification import backbones

        card = read_card(model_dir)
        try:
            pre = Preprocessing.load(model_dir)
            net = backbones.build(card["architecture"])
            net.load_state_dict(load_file(str(Path(model_dir) / WEIGHTS)))
        except (KeyError, RuntimeError, OSError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"The weights in {str(model_dir)!r} do not match the model "
                                 f"card: {exc}") from None
        net.eval()
        return cls(model_dir, card, pre, net)

    # -- the Predictor contract ----------------------------------------------------------
    def preprocess(self, requests: Sequence[ImageRequest]) -> Any:
        return self.pre.stack([r.pil() for r in requests])

    def forward(self, batch: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            # One view, or the 8 dihedral views averaged (test-time augmentation).
            views = self.pre.views(self.pre.normalize(batch))
            probs = sum(self._activation(self.net(view)) for view in views) / len(views)
        return probs.numpy()

    def _activation(self, logits: Any) -> Any:
        return logits.sigmoid() if self.task == "multilabel" else logits.softmax(1)

    def postprocess(self, outputs: Any, requests: Sequence[ImageRequest]) -> list[ImageResponse]:
        return [self.respond(row, getattr(r, "top_k", 5)) for row, r in
                zip(outputs, requests, strict=True)]

    def respond(self, probs: Any, top_k: int = 5) -> ImageResponse:
        order = sorted(range(len(self.classes)), key=lambda i: -float(probs[i]))
        if self.task == "multiclass":
            order = order[:top_k]
            predicted = [self.classes[order[0]]]
        else:
            predicted = [self.classes[i] for i in order if float(probs[i]) >= self.threshold]
        labels = [LabelScore(label=self.classes[i], probability=round(float(probs[i]), 6))
                  for i in order]
        return ImageResponse(labels=labels, predicted=predicted, task=self.task,
                             model_kind=self.kind)

    # -- frame path (evaluation) ---------------------------------------------------------
    def predict_frame(self, frame: pd.DataFrame, limits: dict[str, Any] | None = None
                      ) -> np.ndarray:
        """Probabilities (N×K) for the rows of a dataset split, in chunks."""
        import numpy as np

        from opsline.recipes.image_classification import images
        from opsline.recipes.image_classification.data import image_bytes

        rows = frame.to_dict("records")
        out = []
        for start in range(0, len(rows), CHUNK):
            chunk = [images.decode(image_bytes(r), **(limits or {})).image
                     for r in rows[start:start + CHUNK]]
            out.append(self.forward(self.pre.stack(chunk)))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)


def load_predictor(model_dir: Path, backend: str = "auto") -> ImagePredictor:
    return ImagePredictor.load(Path(model_dir))
