"""Preparation and validation on real image files: splits, manifest, and what stops training."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from opsline import pipeline
from opsline.errors import DataValidationError, UsageError

from .conftest import CLASSES, GRAPEVINE, SMOKE, png_bytes, require_grapevine

RECIPE = "image_classification"


def prepare(*overrides: str):
    return pipeline.prepare(RECIPE, ["data=grapevine", *overrides])


def test_grapevine_split_is_stratified_deterministic_and_in_the_manifest() -> None:
    require_grapevine()
    first = prepare(f"data.path={GRAPEVINE}")
    assert first.root.name == "grapevine"  # one dataset folder per data source
    extras = first.manifest["extras"]
    assert extras["classes"] == CLASSES
    assert extras["class_counts"] == {
        "train": dict.fromkeys(CLASSES, 6),
        "val": dict.fromkeys(CLASSES, 2),
        "test": dict.fromkeys(CLASSES, 2),
    }
    train = first.frame("train")
    assert {"item", "path", "label", "width", "height", "mode", "pixel_hash", "error"} <= set(
        train.columns
    )
    assert set(train["mode"]) == {"RGBA"} and train["error"].isna().all()
    assert pipeline.validate(RECIPE, ["data=grapevine", f"data.path={GRAPEVINE}"]).ok
    again = prepare(f"data.path={GRAPEVINE}")
    assert again.version == first.version
    assert list(again.frame("test")["item"]) == list(first.frame("test")["item"])


def test_data_version_changes_when_pixels_change(small_folder: Path) -> None:
    before = prepare(f"data.path={small_folder}", "data.min_rows.train=1").version
    target = small_folder / "Ak" / "Ak (1).png"
    Image.open(target).rotate(90).save(target)
    after = prepare(f"data.path={small_folder}", "data.min_rows.train=1").version
    assert before != after


def _validate(folder: Path) -> str:
    overrides = [
        "data=grapevine",
        f"data.path={folder}",
        "data.min_rows.train=1",
        "data.min_rows.val=1",
        "data.min_rows.test=1",
    ]
    pipeline.prepare(RECIPE, overrides)
    result = pipeline.validate(RECIPE, overrides)
    assert not result.ok
    with pytest.raises(DataValidationError):  # and training refuses to start
        pipeline.train(RECIPE, [*overrides, *SMOKE[:-1]])
    return result.report()


def test_undecodable_image_fails_naming_the_file(small_folder: Path) -> None:
    good = (small_folder / "Nazli" / "Nazli (2).png").read_bytes()
    (small_folder / "Nazli" / "broken.png").write_bytes(good[: len(good) // 2])
    report = _validate(small_folder)
    assert "image decodes" in report and "broken.png: truncated" in report


def test_duplicate_image_fails(small_folder: Path) -> None:
    source = small_folder / "Dimnit" / "Dimnit (3).png"
    (small_folder / "Dimnit" / "copy.webp").write_bytes(
        png_bytes(Image.open(source), "WEBP", lossless=True)
    )
    assert "pixel_hash" in _validate(small_folder)


def test_unknown_class_small_image_and_bad_mode_fail(small_folder: Path) -> None:
    (small_folder / "Oak").mkdir()
    (small_folder / "Oak" / "oak.png").write_bytes(png_bytes(Image.new("RGB", (96, 96), "red")))
    (small_folder / "Ak" / "tiny.png").write_bytes(png_bytes(Image.new("RGB", (20, 20), "blue")))
    (small_folder / "Ak" / "print.jpg").write_bytes(
        png_bytes(Image.new("CMYK", (96, 96), (0, 50, 100, 0)), "JPEG")
    )
    report = _validate(small_folder)
    assert "label one of" in report and "Oak" in report
    assert "at least 64×64" in report and "image mode one of" in report


def test_data_names_are_per_recipe_with_the_valid_choices() -> None:
    with pytest.raises(
        UsageError, match="Valid data sources: face_attributes, fashion_mnist, grapevine"
    ):
        pipeline.prepare(RECIPE, ["data=imagenet"])


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    from opsline.errors import NoDatasetError

    with pytest.raises(NoDatasetError, match="does not exist"):
        prepare(f"data.path={tmp_path / 'nowhere'}")
