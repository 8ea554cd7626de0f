"""Load an exported image classifier and predict per request batch or per dataset frame.

``preprocess`` turns already-decoded request images into one ``uint8`` batch, ``forward``
returns probabilities (softmax or sigmoid) as numpy and ``postprocess`` names the classes.

Two backends run ``forward`` (chosen at load by :func:`opsline.export.backend.select_backend`):
``native`` (the torch network from ``model.safetensors``) and ``onnx`` (ONNX Runtime on
``model.onnx``, which maps normalised pixels to *logits*, see ``onnx_export``). Only the
network call differs: normalisation, the TTA views and the softmax/sigmoid are the same
torch code for both, so the two backends cannot drift apart in pre- or post-processing.
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

# Network rows (images × TTA views) worth one call. Measured on one core at 288 px with
# MobileNetV2 (benchmarks/image_onnx.md): ONNX Runtime does ~50-60 rows per CPU-second
# whether a call holds 1 or 64 rows, torch falls from ~20-27 at 1-2 rows to ~7 at 32 (much
# of it kernel time: page faults re-mapping large activation buffers on every call).
# Bigger batches buy no throughput on a CPU, they only make the first request in them wait,
# so a served batch is capped at 32 rows: 32 images without TTA, 4 with the 8 dihedral
# views (~0.6 s with ONNX Runtime).
MAX_ROWS = 32
CHUNK = MAX_ROWS  # images per forward pass when scoring a whole split (×8 views with TTA)


class ImagePredictor(Predictor):
    """``net`` (torch) or ``session`` (ONNX Runtime) runs the network; exactly one is set."""

    def __init__(
        self,
        model_dir: Path,
        card: dict[str, Any],
        pre: Preprocessing,
        net: Any,
        session: Any = None,
        backend_reason: str = "native weights.",
    ):
        self.model_dir = Path(model_dir)
        self.card = card
        self.pre = pre
        self.net = net
        self.session = session
        self.backend = "onnx" if session is not None else "native"
        views = 8 if pre.tta == "dihedral" else 1
        self.max_batch_size = max(1, MAX_ROWS // views)  # in requests (images), read by
        # the server's batcher
        self.task: str = card["task"]
        self.classes: list[str] = list(card["classes"])
        self.threshold = float(card.get("threshold", 0.5))
        self.kind = str(card["kind"])
        self.info = {
            "recipe": card["recipe"],
            "kind": self.kind,
            "task": self.task,
            "classes": self.classes,
            "image_size": pre.image_size,
            "data_name": card.get("data_name"),
            "data_version": card.get("data_version"),
            "training": card.get("training", {}),
            "backend": self.backend,
            "backend_reason": backend_reason,
            "max_batch_size": self.max_batch_size,
        }
        if session is not None:
            self._input = session.get_inputs()[0].name

    @classmethod
    def load(cls, model_dir: Path, backend: str | None = None) -> ImagePredictor:
        """Load ``model_dir`` with the backend :func:`select_backend` picks for ``backend``
        (``auto`` / ``onnx`` / ``native``; ``None`` = ``$OPSLINE_BACKEND`` or ``auto``)."""
        from opsline.export.backend import ort_session, select_backend
        from opsline.export.parity import ONNX_FILE

        model_dir = Path(model_dir)
        card = read_card(model_dir)
        chosen, why = select_backend(model_dir, backend)
        try:
            pre = Preprocessing.load(model_dir)
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise ModelLoadError(
                f"The preprocessing in {str(model_dir)!r} is unreadable: {exc}"
            ) from None
        if chosen == "onnx":
            # The torch network is not built at all: no timm import, no second copy of the
            # weights in memory (the parity record vouches that both compute the same).
            return cls(model_dir, card, pre, None, ort_session(model_dir / ONNX_FILE), why)
        return cls(model_dir, card, pre, load_network(model_dir, card), backend_reason=why)

    # -- the Predictor contract ----------------------------------------------------------
    def preprocess(self, requests: Sequence[ImageRequest]) -> Any:
        return self.pre.stack([r.pil() for r in requests])

    def forward(self, batch: Any) -> np.ndarray:
        import numpy as np
        import torch

        if len(batch) == 0:  # nothing to run (and a 0-row ONNX call is not worth the risk)
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            # One view, or the 8 dihedral views averaged (test-time augmentation).
            views = self.pre.views(self.pre.normalize(batch))
            probs = sum(self._activation(self._logits(view)) for view in views) / len(views)
        return probs.numpy()

    def _logits(self, view: Any) -> Any:
        """The network on one view: torch, or ONNX Runtime on the same float32 pixels."""
        if self.session is None:
            return self.net(view)
        import torch

        # contiguous(): rot90/flip views are strided; ORT needs a dense C-order buffer.
        pixels = view.contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self._input: pixels})[0])

    def _activation(self, logits: Any) -> Any:
        return logits.sigmoid() if self.task == "multilabel" else logits.softmax(1)

    def postprocess(self, outputs: Any, requests: Sequence[ImageRequest]) -> list[ImageResponse]:
        return [
            self.respond(row, getattr(r, "top_k", 5))
            for row, r in zip(outputs, requests, strict=True)
        ]

    def respond(self, probs: Any, top_k: int = 5) -> ImageResponse:
        order = sorted(range(len(self.classes)), key=lambda i: -float(probs[i]))
        if self.task == "multiclass":
            order = order[:top_k]
            predicted = [self.classes[order[0]]]
        else:
            predicted = [self.classes[i] for i in order if float(probs[i]) >= self.threshold]
        labels = [
            LabelScore(label=self.classes[i], probability=round(float(probs[i]), 6)) for i in order
        ]
        return ImageResponse(
            labels=labels, predicted=predicted, task=self.task, model_kind=self.kind
        )

    # -- frame path (evaluation) ---------------------------------------------------------
    def predict_frame(
        self, frame: pd.DataFrame, limits: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Probabilities (N×K) for the rows of a dataset split, in chunks."""
        import numpy as np

        from opsline.recipes.image_classification import images
        from opsline.recipes.image_classification.data import image_bytes

        rows = frame.to_dict("records")
        out = []
        for start in range(0, len(rows), CHUNK):
            chunk = [
                images.decode(image_bytes(r), **(limits or {})).image
                for r in rows[start : start + CHUNK]
            ]
            out.append(self.forward(self.pre.stack(chunk)))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)


def load_network(model_dir: Path, card: dict[str, Any]) -> Any:
    """The torch network of ``model_dir`` in eval mode (``ModelLoadError`` if it does not fit)."""
    from safetensors.torch import load_file

    from opsline.recipes.image_classification import backbones

    try:
        net = backbones.build(card["architecture"])
        net.load_state_dict(load_file(str(Path(model_dir) / WEIGHTS)))
    except (KeyError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(
            f"The weights in {str(model_dir)!r} do not match the model card: {exc}"
        ) from None
    return net.eval()  # BatchNorm on running statistics, dropout off


def load_predictor(model_dir: Path, backend: str | None = "auto") -> ImagePredictor:
    return ImagePredictor.load(Path(model_dir), backend)
