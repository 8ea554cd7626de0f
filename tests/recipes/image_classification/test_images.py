"""Safe decoding: what is accepted, converted, and refused (with which code)."""

from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image

from opsline.recipes.image_classification import images

from .conftest import leaf_bytes, png_bytes


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A ~100-byte PNG whose header declares width × height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepted_formats_decode_to_rgb(fmt: str) -> None:
    data = png_bytes(Image.new("RGB", (40, 30), (10, 200, 30)), fmt)
    decoded = images.decode(data)
    assert (decoded.format, decoded.image.mode, decoded.image.size) == (fmt, "RGB", (40, 30))


def test_rgba_leaf_is_composited_on_white() -> None:
    decoded = images.decode(leaf_bytes("Ak", 1))
    assert decoded.mode == "RGBA" and decoded.image.mode == "RGB"
    assert decoded.image.getpixel((0, 0)) == (255, 255, 255)  # transparent corner -> white


@pytest.mark.parametrize("mode", ["L", "LA", "P"])
def test_greyscale_and_palette_are_converted(mode: str) -> None:
    decoded = images.decode(png_bytes(Image.new(mode, (20, 20))))
    assert decoded.mode == mode and decoded.image.mode == "RGB"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"this is plain text, not a picture", "not_an_image"),
        (bomb_png(), "decompression_bomb"),
    ],
    ids=["empty", "text", "bomb"],
)
def test_bad_bytes_are_refused_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(images.ImageError) as error:
        images.decode(data)
    assert error.value.code == code and str(error.value)


def test_truncated_png_and_jpeg_are_refused() -> None:
    for fmt in ("PNG", "JPEG"):
        full = png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"), fmt)
        with pytest.raises(images.ImageError) as error:
            images.decode(full[: len(full) // 2])
        assert error.value.code == "truncated", fmt


def test_unsupported_format_and_limits() -> None:
    gif = png_bytes(Image.new("RGB", (20, 20)), "GIF")
    with pytest.raises(images.ImageError) as error:
        images.decode(gif)
    assert error.value.code == images.UNSUPPORTED and "GIF" in str(error.value)
    with pytest.raises(images.ImageError, match="limit") as error:
        images.decode(png_bytes(Image.new("RGB", (20, 20))), max_bytes=50)
    assert error.value.code == "too_large"
    with pytest.raises(images.ImageError) as error:
        images.decode(png_bytes(Image.new("RGB", (4, 40))))
    assert error.value.code == "too_small"
    with pytest.raises(images.ImageError) as error:
        images.decode(png_bytes(Image.new("CMYK", (20, 20)), "JPEG"))
    assert error.value.code == "unsupported_mode"


def test_pixel_hash_sees_content_not_encoding() -> None:
    picture = Image.effect_noise((32, 32), 40).convert("RGB")
    as_png = images.decode(png_bytes(picture)).image
    as_webp = images.decode(png_bytes(picture, "WEBP", lossless=True)).image
    assert images.pixel_hash(as_png) == images.pixel_hash(as_webp)
    assert images.pixel_hash(as_png) != images.pixel_hash(as_png.rotate(90))
