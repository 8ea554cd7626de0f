"""Image classification: multi-class or multi-label, one recipe, data sources chosen by config.

``data=grapevine`` (an image folder, class per sub-folder), ``data=fashion_mnist`` (IDX files)
and ``data=face_attributes`` (a CelebA-style ±1 attribute table) each prepare into their own
dataset and register under their own model name (``Recipe.model_name``), so
``opsline run image_classification data=grapevine --serve`` serves ``models:/grapevine@production``.

Importing this module is cheap (pydantic only); torch, timm, PIL, pandas and gradio are
imported inside the methods that use them.

Module map: ``sources`` (raw loaders) · ``data`` (inspect, de-duplicate, split) · ``checks``
(pandera rules) · ``images`` (safe decoding, shared by every stage) · ``preprocessing`` ·
``augment`` · ``backbones`` (timm + packaged ImageNet weights, small CNN) · ``module``
(Lightning, two learning rates, freeze schedule) · ``train`` · ``card`` · ``onnx_export``
(``model.onnx`` + parity gate) · ``predictor`` (torch or ONNX Runtime) ·
``metrics``/``evaluation`` · ``cv`` (k-fold quality runs) · ``schemas`` · ``ui`` ·
``monitoring`` (drift features, live accuracy).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opsline.data.validation import Checks
from opsline.recipes.base import Evaluation, Recipe, Scalar, TrainedModel
from opsline.recipes.image_classification.config import ImageModelConfig
from opsline.recipes.image_classification.schemas import ImageRequest, ImageResponse
from opsline.recipes.registry import register_recipe

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.export.parity import ParityRecord
    from opsline.recipes.image_classification.predictor import ImagePredictor


@register_recipe
class ImageClassificationRecipe(Recipe):
    """Classify images: grapevine leaves, Fashion-MNIST, face attributes, or your own folder."""

    name = "image_classification"
    description = (
        "Image classification (multi-class / multi-label): timm backbones with "
        "offline ImageNet weights or a small CNN; data=grapevine|fashion_mnist|"
        "face_attributes."
    )
    primary_metric = "accuracy"
    greater_is_better = True
    Request = ImageRequest
    Response = ImageResponse
    model_schema = ImageModelConfig
    #: ``POST /predict`` also takes a multipart upload (field ``image``).
    accepts_files: ClassVar[bool] = True
    predicted_value_buckets: ClassVar[tuple[float, ...]] = (
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        0.95,
        0.99,
        1.0,
    )

    def model_name(self, cfg: Any) -> str:
        """One registered model (and dataset) per data source: ``grapevine`` …"""
        return str(cfg.data.name)

    # -- data -------------------------------------------------------------------------
    def prepare(self, cfg: Any) -> dict[str, pd.DataFrame]:
        from opsline.recipes.image_classification.data import prepare

        return prepare(cfg)

    def manifest_extras(self, cfg: Any, splits: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        from opsline.recipes.image_classification.data import summary

        return summary(cfg, dict(splits))

    def checks(self, cfg: Any) -> Checks:
        from opsline.recipes.image_classification.checks import checks

        return checks(cfg)

    # -- training ---------------------------------------------------------------------
    def train(self, cfg: Any, dataset: Any, run: Any, out_dir: Path) -> TrainedModel:
        from opsline.recipes.image_classification.train import train_classifier

        frames = {split: dataset.frame(split) for split in ("train", "val")}
        summary = dataset.manifest.get("extras")
        if summary:
            run.log_dict(summary, "class_balance.json")
        return train_classifier(
            cfg, frames, run, Path(out_dir), data_version=getattr(dataset, "version", None)
        )

    def evaluate(self, cfg: Any, predictor: Any, frame: pd.DataFrame) -> Evaluation:
        from opsline.recipes.image_classification.evaluation import evaluate

        return evaluate(cfg, predictor, frame)

    def export_onnx(self, cfg: Any, model_dir: Path, dataset: Any) -> ParityRecord:
        """``model.onnx`` (normalised pixels → logits) checked against torch on the test
        split with the serving TTA; a failed record, never an exception (``onnx_export``)."""
        from opsline.recipes.image_classification.onnx_export import export_onnx

        return export_onnx(cfg, Path(model_dir), dataset)

    # -- serving ----------------------------------------------------------------------
    def load_predictor(self, model_dir: Path, backend: str = "auto") -> ImagePredictor:
        from opsline.recipes.image_classification.predictor import load_predictor

        return load_predictor(Path(model_dir), backend)

    def request_from_upload(
        self,
        filename: str | None,
        content_type: str | None,
        data: bytes,
        fields: Mapping[str, str] | None = None,
    ) -> ImageRequest:
        """The request for a multipart upload (the file's bytes are sniffed, its name and
        claimed type are not trusted). Raises ``pydantic.ValidationError`` like JSON input."""
        extra = dict(fields or {})
        # Form fields are text: "3" is how a form sends a number (JSON bodies stay strict).
        image = base64.b64encode(data).decode("ascii")
        return ImageRequest.model_validate({"image": image, **extra}, strict=False)

    # -- monitoring (see ``monitoring``) ---------------------------------------------------
    #: Train images predicted at registration for the drift reference (decode + predict).
    reference_rows: ClassVar[int] = 64
    #: Images are large: the prediction log keeps their monitored features, not the bytes.
    log_request_body: ClassVar[bool] = False
    #: Feedback is the true class label (scored as wrong when the model has no such class).
    feedback_type: ClassVar[type | None] = str

    def monitored_features(
        self, requests: Sequence[Any], responses: Sequence[Any]
    ) -> list[dict[str, Scalar]]:
        from opsline.recipes.image_classification.monitoring import monitored_features

        return monitored_features(requests, responses)

    def requests_from_frame(self, frame: pd.DataFrame) -> list[ImageRequest]:
        from opsline.recipes.image_classification.monitoring import requests_from_frame

        return requests_from_frame(frame)

    def live_quality(
        self, predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]
    ) -> dict[str, float]:
        from opsline.recipes.image_classification.monitoring import live_quality

        return live_quality(predictions, actuals)

    def ui(self, predict: Callable[[list[ImageRequest]], list[ImageResponse]]) -> Any:
        from opsline.recipes.image_classification.ui import build_ui

        return build_ui(predict)

    def sample_requests(self) -> list[ImageRequest]:
        return sample_requests()


def sample_image(kind: str = "leaf", size: int = 96) -> bytes:
    """A small generated PNG (no data or network needed): a green leaf shape on white."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    if kind == "leaf":
        draw.ellipse((size * 0.15, size * 0.25, size * 0.85, size * 0.8), fill=(74, 94, 52))
        draw.line((size * 0.5, size * 0.8, size * 0.5, size * 0.95), fill=(60, 70, 40), width=3)
    else:
        draw.rectangle((size * 0.3, size * 0.2, size * 0.7, size * 0.85), fill=(40, 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_requests() -> list[ImageRequest]:
    """Two generated images (for smoke tests, load tests and the API docs)."""
    return [
        ImageRequest.from_bytes(sample_image("leaf"), top_k=3),
        ImageRequest.from_bytes(sample_image("box"), top_k=3),
    ]


__all__ = ["ImageClassificationRecipe", "ImageRequest", "ImageResponse", "sample_requests"]
