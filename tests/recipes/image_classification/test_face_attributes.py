"""Multi-label through the real path: a generated attribute table of real PNG files.

The set mimics CelebA's layout (image file + one ±1 column per attribute) with attributes
a small CNN can learn in seconds: disc vs square, red vs blue, large vs small, a stripe.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsline import pipeline
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

from .conftest import shapes_dataset

ATTRIBUTES = ["has_circle", "is_red", "is_large", "has_stripe"]


@pytest.mark.quality
def test_attribute_table_trains_serves_and_reports_per_attribute(tmp_path: Path) -> None:
    table = shapes_dataset(tmp_path / "shapes", n=240)
    overrides = [
        "data=face_attributes",
        f"data.path={table}",
        f"data.image_dir={table.parent / 'images'}",
        "model=small_cnn",
        "model.image_size=32",
        "model.max_epochs=12",
        "model.augment=none",
        "model.channels=[16,32,64]",
        "model.batch_size=32",
        "trainer=debug",
        "trainer.max_epochs=null",
        "data.val_fraction=0.15",
        "data.test_fraction=0.2",
    ]
    results, decision = pipeline.run("image_classification", overrides)
    assert decision.promoted, decision.reason
    metrics = results[0].metrics
    for name in ATTRIBUTES:
        assert {f"test_f1/{name}", f"test_ap/{name}"} <= set(metrics)
    # Measured 0.90 mean accuracy / 0.97 mAP (2 cores); the bars leave a margin.
    assert metrics["test_accuracy"] >= 0.8, metrics
    assert metrics["test_map"] >= 0.85, metrics

    dataset = pipeline.prepare("image_classification", overrides)
    assert dataset.root.name == "face_attributes"
    assert dataset.manifest["extras"]["task"] == "multilabel"
    assert set(dataset.manifest["extras"]["class_counts"]["train"]) == set(ATTRIBUTES)

    image = (tmp_path / "shapes" / "images" / "img_0000.png").read_bytes()
    settings = ServingSettings(
        recipe="image_classification", model_name="face_attributes", ui=False
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/predict", json={"image": base64.b64encode(image).decode()})
        assert response.status_code == 200, response.text
        body = response.json()
    assert body["task"] == "multilabel"
    assert {item["label"] for item in body["labels"]} == set(ATTRIBUTES)  # all attributes
    assert set(body["predicted"]) <= set(ATTRIBUTES)


def test_plus_minus_one_table_values_are_validated(tmp_path: Path) -> None:
    table = shapes_dataset(tmp_path / "shapes", n=30)
    text = table.read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + ",7"  # an impossible attribute value
    table.write_text("\n".join(text) + "\n")
    overrides = [
        "data=face_attributes",
        f"data.path={table}",
        f"data.image_dir={table.parent / 'images'}",
    ]
    pipeline.prepare("image_classification", overrides)
    report = pipeline.validate("image_classification", overrides).report()
    assert "attr_has_stripe" in report and "0/1" in report
