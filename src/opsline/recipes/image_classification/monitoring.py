"""Monitoring hooks of the image-classification recipe: drift features and live accuracy.

Images are too large for the prediction log (``log_request_body = False``), so what is
logged per request are a few numbers that move when the pictures change — a new camera
(size), a darker room (brightness), a flat scan (contrast), a colour cast (mean R/G/B) —
and how sure the model was (the top probability drops on unfamiliar inputs).

:func:`monitored_features` runs once per served batch. The request's image was already
decoded once during validation (``schemas.EncodedImage``); the statistics read a fixed
grid of at most 64 × 64 pixels of it (nearest-neighbour sampling), so their cost does not
grow with the photo's size and, unlike an averaging downscale, sampling keeps the contrast
of fine texture (box-averaging would lower it more for bigger photos).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsline.recipes.image_classification.schemas import ImageRequest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.recipes.base import Scalar

#: Longest side, in pixels, of the sample grid the statistics are computed on.
SAMPLE_SIDE = 64
_LUMA = (0.299, 0.587, 0.114)
FEATURES = (
    "width",
    "height",
    "brightness",
    "contrast",
    "mean_r",
    "mean_g",
    "mean_b",
    "top_probability",
)


def image_statistics(image: Any) -> dict[str, float]:
    """Brightness (mean luminance, 0..1), contrast (luminance std) and mean R/G/B (0..1).

    Luminance is ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B, PIL's ``L``) of the RGB image.
    """
    import math

    import numpy as np
    from PIL import Image

    width, height = image.size
    if max(width, height) > SAMPLE_SIDE:
        image = image.resize(
            (min(width, SAMPLE_SIDE), min(height, SAMPLE_SIDE)), Image.Resampling.NEAREST
        )
    pixels = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(-1, 3).astype(np.float64)
    n = len(pixels)
    # Matrix products, not .mean(axis=0)/.std(): on a few thousand pixels numpy's axis
    # reductions cost tens of µs each, a dot product a few.
    mean_rgb = (np.ones(n) @ pixels) / (255 * n)
    luma = pixels @ _LUMA
    mean = float(luma.sum()) / n
    variance = max(float(luma @ luma) / n - mean * mean, 0.0)
    return {
        "brightness": mean / 255,
        "contrast": math.sqrt(variance) / 255,
        "mean_r": float(mean_rgb[0]),
        "mean_g": float(mean_rgb[1]),
        "mean_b": float(mean_rgb[2]),
    }


def monitored_features(
    requests: Sequence[ImageRequest], responses: Sequence[Any]
) -> list[dict[str, Scalar]]:
    """Per image: size as sent, :func:`image_statistics`, and the top probability."""
    rows: list[dict[str, Scalar]] = []
    for request, response in zip(requests, responses, strict=True):
        decoded = getattr(request.image, "decoded", None)
        image = decoded.image if decoded is not None else request.pil()
        width, height = (decoded.width, decoded.height) if decoded is not None else image.size
        rows.append(
            {
                "width": float(width),
                "height": float(height),
                **image_statistics(image),
                "top_probability": float(response.predicted_value),
            }
        )
    return rows


def requests_from_frame(frame: pd.DataFrame, top_k: int = 5) -> list[ImageRequest]:
    """Prepared rows (file ``path`` or inline ``image`` bytes) as base64 requests.

    Rows whose image failed inspection (``error`` set) are skipped, as training refuses
    them. A training format the API does not accept (e.g. BMP) is sent as PNG: same
    pixels, so the same features.
    """
    from pydantic import ValidationError

    from opsline.recipes.image_classification import images
    from opsline.recipes.image_classification.data import image_bytes

    requests = []
    for row in frame.to_dict("records"):
        if row.get("error"):
            continue
        data = image_bytes(row)
        try:
            requests.append(ImageRequest.from_bytes(data, top_k=top_k))
        except ValidationError:
            try:
                decoded = images.decode(data, formats=(*images.SERVING_FORMATS, "BMP"))
                requests.append(
                    ImageRequest.from_bytes(images.encode_png(decoded.image), top_k=top_k)
                )
            except (images.ImageError, ValidationError):
                continue  # not servable at all: it could not be in live traffic either
    return requests


def live_quality(predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]) -> dict[str, float]:
    """``{"accuracy"}``: share of logged top classes equal to the reported true class.

    A reported label the model does not know counts as wrong (it can never be predicted).
    Multi-label responses are left out: their feedback would be a set of attributes, not
    one label. ``{}`` when no multi-class row is left.
    """
    if len(predictions) != len(actuals):
        raise ValueError(f"{len(predictions)} predictions for {len(actuals)} actuals")
    scored = [
        (_top_class(p), str(a))
        for p, a in zip(predictions, actuals, strict=True)
        if p.get("task", "multiclass") == "multiclass"
    ]
    if not scored:
        return {}
    return {"accuracy": sum(top == actual for top, actual in scored) / len(scored)}


def _top_class(prediction: dict[str, Any]) -> str | None:
    if prediction.get("predicted"):
        return str(prediction["predicted"][0])
    labels = prediction.get("labels") or []
    return str(labels[0]["label"]) if labels else None
