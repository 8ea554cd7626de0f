"""Safe image decoding, shared by data preparation, validation, training and serving.

Every image the recipe touches goes through :func:`decode`, so a file that trains is a file
that serves and vice versa. The checks run cheapest first:

1. size of the encoded bytes (``max_bytes``) — before PIL sees anything;
2. the format from the file header, against an allow-list (PNG, JPEG, WebP by default) —
   the claimed content type or file name is never trusted;
3. the pixel count from the header (``max_pixels``) before any pixel is decoded: a
   decompression bomb (a few KB of PNG declaring 50,000 × 50,000 pixels) is refused without
   allocating its buffer. We check this ourselves instead of changing the process-global
   ``PIL.Image.MAX_IMAGE_PIXELS``, and still treat PIL's own bomb error as a refusal;
4. ``verify()`` (structure and checksums) then a fresh ``load()`` (the pixels): a truncated
   file fails here, because ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False;
5. minimum width/height, then conversion of the mode to RGB: transparency is composited
   on white (the grapevine scans are RGBA on a transparent background), greyscale and
   palette images are expanded.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # 40 MP: any phone photo, not a bomb
MIN_SIZE = 8  # pixels, each side
SERVING_FORMATS = ("PNG", "JPEG", "WEBP")
# Modes we know how to turn into RGB without guessing (16-bit / float / CMYK are refused).
ALLOWED_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "1")

# Error codes -> the HTTP status the server answers with (see ImageError).
UNSUPPORTED = "unsupported_media_type"


class ImageError(ValueError):
    """An input that is not a usable image; ``code`` is machine-readable, ``str`` is the reason.

    Codes: ``too_large``, ``empty``, ``not_an_image``, ``unsupported_media_type``,
    ``decompression_bomb``, ``truncated``, ``too_small``, ``unsupported_mode``.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class DecodedImage:
    """An RGB image plus what the original file looked like."""

    image: PILImage.Image  # RGB, fully loaded
    format: str
    mode: str  # the original mode, before conversion
    width: int
    height: int


def decode(
    data: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    min_size: int = MIN_SIZE,
    formats: tuple[str, ...] = SERVING_FORMATS,
    modes: tuple[str, ...] = ALLOWED_MODES,
) -> DecodedImage:
    """Decode ``data`` into an RGB image or raise :class:`ImageError` saying why not."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("empty", "the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(
            "too_large",
            f"the image is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB",
        )
    fmt = ""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = str(probe.format or "").upper()
            width, height = probe.size
            mode = probe.mode
            if fmt not in formats:
                raise ImageError(
                    UNSUPPORTED,
                    f"{fmt or 'this'} images are not supported; "
                    f"send {', '.join(_nice(f) for f in formats)}",
                )
            if width * height > max_pixels:
                raise ImageError(
                    "decompression_bomb",
                    f"the image declares {width}×{height} pixels, more than the "
                    f"{max_pixels:,} allowed (a decompression bomb?)",
                )
            probe.verify()
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            image.load()
            rgb = to_rgb(image, modes)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageError(
            "decompression_bomb", f"refused as a decompression bomb: {error}"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            "not_an_image",
            f"the data is not an image PIL can identify (send {', '.join(map(_nice, formats))})",
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # PIL reports truncation and corrupt chunks as OSError/SyntaxError/ValueError.
        raise ImageError(
            "truncated", f"the {_nice(fmt)} image is truncated or corrupt ({error})"
        ) from None
    if min(width, height) < min_size:
        raise ImageError(
            "too_small",
            f"the image is {width}×{height} pixels; each side must be at least {min_size}",
        )
    return DecodedImage(rgb, fmt, mode, width, height)


def _nice(fmt: str) -> str:
    return {"WEBP": "WebP"}.get(fmt, fmt)


def to_rgb(image: PILImage.Image, modes: tuple[str, ...] = ALLOWED_MODES) -> PILImage.Image:
    """RGB copy of ``image``; alpha is composited on white so transparent stays background."""
    from PIL import Image

    if image.mode not in modes:
        raise ImageError(
            "unsupported_mode",
            f"image mode {image.mode!r} is not supported (allowed: {', '.join(modes)})",
        )
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def pixel_hash(image: PILImage.Image) -> str:
    """sha256 of the RGB pixels and size: equal for the same picture saved twice (even as
    PNG vs lossless WebP), so duplicates are found by content, not by file bytes."""
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def encode_png(image: PILImage.Image) -> bytes:
    """PNG bytes of ``image`` (used to materialise Fashion-MNIST and by the UI)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
