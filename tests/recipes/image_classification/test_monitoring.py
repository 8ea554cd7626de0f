"""Monitoring hooks of the image classifier: drift features of known pictures, reference
requests from a prepared split, and live accuracy against reported labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from opsline.errors import UsageError
from opsline.recipes.image_classification.images import to_rgb
from opsline.recipes.image_classification.monitoring import FEATURES
from opsline.recipes.image_classification.schemas import ImageRequest, ImageResponse
from opsline.recipes.registry import get_recipe

from .conftest import CLASSES, png_bytes


@pytest.fixture(scope="module")
def recipe():
    return get_recipe("image_classification")


def response(probability: float = 0.8) -> ImageResponse:
    return ImageResponse(
        labels=[{"label": "Ak", "probability": probability}],
        predicted=["Ak"],
        task="multiclass",
        model_kind="test",
    )


def features(recipe, image: Image.Image, probability: float = 0.8) -> dict:
    request = ImageRequest.from_bytes(png_bytes(image))
    return recipe.monitored_features([request], [response(probability)])[0]


def half_black(size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2 - 1, size[1]), fill="black")
    return image


def test_plain_pictures_have_the_statistics_they_should(recipe) -> None:
    white = features(recipe, Image.new("RGB", (300, 200), "white"), 0.93)
    assert list(white) == list(FEATURES)
    assert (white["width"], white["height"]) == (300.0, 200.0)  # as sent, not as sampled
    assert white["brightness"] == pytest.approx(1.0) and white["contrast"] == pytest.approx(0)
    assert white["mean_r"] == white["mean_g"] == white["mean_b"] == pytest.approx(1.0)
    assert white["top_probability"] == pytest.approx(0.93)
    black = features(recipe, Image.new("L", (40, 40), 0))
    assert black["brightness"] == pytest.approx(0) and black["contrast"] == pytest.approx(0)
    red = features(recipe, Image.new("RGB", (50, 50), (255, 0, 0)))
    assert (red["mean_r"], red["mean_g"], red["mean_b"]) == pytest.approx((1, 0, 0))
    assert red["brightness"] == pytest.approx(0.299, abs=1e-3)  # ITU-R 601 luma


def test_statistics_do_not_depend_on_the_picture_size(recipe) -> None:
    # The same scene at 48 px and at 2000 px: sampling a grid (not averaging it down)
    # keeps brightness and contrast, so a bigger camera alone is not a contrast drift.
    small, big = features(recipe, half_black((48, 48))), features(recipe, half_black((2000, 2000)))
    for name in ("brightness", "contrast", "mean_r"):
        assert small[name] == pytest.approx(0.5, abs=0.02)
        assert big[name] == pytest.approx(small[name], abs=0.02)
    assert big["width"] == 2000.0


def test_transparent_scans_are_measured_on_white_like_the_model_sees_them(recipe) -> None:
    leaf = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    row = features(recipe, leaf)
    assert row["brightness"] == pytest.approx(1.0)


@pytest.fixture
def prepared_train(small_folder: Path):
    from opsline.config import load_config

    cfg = load_config("image_classification", ["data=grapevine", f"data.path={small_folder}"])
    return get_recipe("image_classification").prepare(cfg)["train"]


def test_reference_requests_from_the_prepared_split_are_served(
    recipe, prepared_train, grapevine_workspace
) -> None:
    from opsline.tracking.registry import resolve_model

    requests = recipe.requests_from_frame(prepared_train)
    assert len(requests) == len(prepared_train) > 0
    predictor = recipe.load_predictor(
        resolve_model(recipe.name, "models:/grapevine@production").local_dir
    )
    responses = predictor.predict(requests)
    rows = recipe.monitored_features(requests, responses)
    assert all(list(row) == list(FEATURES) for row in rows)
    assert [row["width"] for row in rows] == [float(w) for w in prepared_train["width"]]
    assert all(0 < row["top_probability"] <= 1 for row in rows)
    # Grapevine scans are leaves on a transparent (so white) background: bright pictures.
    assert all(row["brightness"] > 0.5 for row in rows)


def test_broken_rows_are_skipped_and_other_formats_sent_as_png(
    recipe, prepared_train, tmp_path: Path
) -> None:
    frame = prepared_train.head(3).copy()
    frame.loc[0, "error"] = "Ak (1).png: truncated: ..."
    bmp = tmp_path / "leaf.bmp"
    to_rgb(Image.open(frame.loc[2, "path"])).save(bmp)  # the scan on white, as BMP
    frame.loc[2, "path"] = str(bmp)
    requests = recipe.requests_from_frame(frame)
    assert len(requests) == 2
    assert requests[1].image.decoded.format == "PNG"
    original = ImageRequest.from_bytes(Path(prepared_train.loc[2, "path"]).read_bytes())
    same = recipe.monitored_features([requests[1], original], [response(), response()])
    assert same[0] == same[1]


def test_live_accuracy_counts_unknown_labels_as_wrong(recipe) -> None:
    def logged(top: str) -> dict:
        return response().model_copy(update={"predicted": [top]}).model_dump(mode="json")

    multilabel = {
        "labels": [{"label": "is_red", "probability": 0.9}],
        "predicted": ["is_red"],
        "task": "multilabel",
        "model_kind": "test",
    }
    predictions = [logged("Ak"), logged("Nazli"), logged("Ak"), logged("Dimnit"), multilabel]
    actuals = ["Ak", "Buzgulu", "Ak", "Oak", "is_red"]  # "Oak" is no class of the model
    assert "Oak" not in CLASSES
    assert recipe.live_quality(predictions, actuals) == {"accuracy": 0.5}
    assert recipe.live_quality([multilabel], ["is_red"]) == {}
    assert recipe.live_quality([], []) == {}


def test_images_are_not_logged_and_cannot_become_training_rows(recipe) -> None:
    assert recipe.log_request_body is False and recipe.feedback_type is str
    with pytest.raises(UsageError):
        recipe.feedback_frame([{"top_k": 5}], ["Ak"])
