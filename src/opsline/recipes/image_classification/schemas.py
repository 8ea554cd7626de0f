"""Request / response schemas of the image-classification API (pydantic v2).

A request carries one image as base64 text (JSON) — the multipart upload route builds the
same request from the uploaded bytes (:meth:`ImageRequest.from_bytes`). The image is fully
decoded *during validation* (see ``images.decode``), so a truncated file, a decompression
bomb or an unsupported format is a 4xx naming the field ``image`` and the reason, never an
error inside the model. The decoded RGB image rides along on the validated string
(:class:`EncodedImage`), so the predictor does not decode it twice.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

# A real 32×32 green PNG: the documented example must be a request the server accepts.
EXAMPLE_IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAK0lEQVR42u3NQQEAQAQAMC6XJDIJfSX4bQWWPRWX"
    "XhwTCAQCgUAgEAgEWz5LGwFiPVVaqgAAAABJRU5ErkJggg=="
)
_DATA_URL = re.compile(r"^data:[\w/+.-]+;base64,", re.IGNORECASE)


class EncodedImage(str):
    """The base64 text as sent, plus ``decoded`` (an ``images.DecodedImage``)."""

    decoded: Any = None


def _decode_image(value: str) -> EncodedImage:
    from opsline.recipes.image_classification import images

    text = _DATA_URL.sub("", value.strip(), count=1)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(
            "base64", "image must be base64-encoded bytes of a PNG, JPEG or WebP file"
        ) from None
    try:
        decoded = images.decode(data)
    except images.ImageError as error:
        # The error type carries the code, so the server can map unsupported formats to 415.
        raise PydanticCustomError(error.code, str(error)) from None
    result = EncodedImage(value)
    result.decoded = decoded
    return result


ImageField = Annotated[str, AfterValidator(_decode_image)]


class ImageRequest(BaseModel):
    """One image to classify."""

    # Strict: a JSON true or "3" is not a top_k.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"image": EXAMPLE_IMAGE, "top_k": 3}]},
    )

    image: ImageField = Field(
        description="The image file (PNG, JPEG or WebP), base64-encoded; "
        "a data: URL prefix is accepted. At most 10 MB."
    )
    top_k: int = Field(
        5,
        ge=1,
        le=100,
        description="How many classes to return (multi-class "
        "models; multi-label models return all)",
    )

    @classmethod
    def from_bytes(cls, data: bytes, top_k: int = 5) -> ImageRequest:
        """A validated request from raw file bytes (upload route, UI, tests)."""
        # Lax: a UI slider may give 5.0 for 5 (5.5 is still refused).
        image = base64.b64encode(data).decode("ascii")
        return cls.model_validate({"image": image, "top_k": top_k}, strict=False)

    def pil(self) -> Any:
        """The decoded RGB ``PIL.Image``."""
        decoded = getattr(self.image, "decoded", None)
        if decoded is None:  # built with model_construct: decode now
            decoded = _decode_image(str(self.image)).decoded
        return decoded.image


class LabelScore(BaseModel):
    label: str
    probability: float = Field(ge=0, le=1)


class ImageResponse(BaseModel):
    """The classification of one image."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "labels": [
                        {"label": "Ak", "probability": 0.93},
                        {"label": "Nazli", "probability": 0.04},
                    ],
                    "predicted": ["Ak"],
                    "task": "multiclass",
                    "model_kind": "mobilenetv2_100",
                }
            ]
        }
    )

    labels: list[LabelScore] = Field(
        description="Multi-class: the top_k classes, most likely "
        "first. Multi-label: every attribute, most "
        "likely first."
    )
    predicted: list[str] = Field(
        description="Multi-class: the top class. Multi-label: the "
        "attributes at or above the decision threshold."
    )
    task: Literal["multiclass", "multilabel"]
    model_kind: str = Field(description="The network that produced the answer")

    @property
    def predicted_value(self) -> float:
        """The top probability (the server's ``opsline_predicted_value`` histogram)."""
        return self.labels[0].probability if self.labels else 0.0
