"""Fixtures for the image-classification tests: real images, generated sets, trained models.

Real data: the 50 grapevine scans in ``../shared/data/grapevine-leaves`` and Fashion-MNIST
from Debian's ``dataset-fashion-mnist``. Trained models are built once per session with
the small CNN at low resolution (seconds on 2 cores).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
GRAPEVINE = Path(
    os.environ.get("OPSLINE_GRAPEVINE_DIR", REPO.parent / "shared" / "data" / "grapevine-leaves")
)
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["Ak", "Ala_Idris", "Buzgulu", "Dimnit", "Nazli"]
SMOKE = [
    "model=small_cnn",
    "trainer=debug",
    "trainer.max_epochs=1",
    "model.image_size=32",
    f"data.path={GRAPEVINE}",
]


def require_grapevine() -> Path:
    if not (GRAPEVINE / "Ak").is_dir():
        pytest.fail(
            f"The grapevine test images are missing at {GRAPEVINE} (set OPSLINE_GRAPEVINE_DIR)."
        )
    return GRAPEVINE


def require_fashion() -> Path:
    if not (FASHION / "train-labels-idx1-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is missing at {FASHION}: install the Debian package "
            "`dataset-fashion-mnist` (`make system-deps`)."
        )
    return FASHION


def png_bytes(image, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def leaf_bytes(name: str = "Ak", index: int = 1, size: int | None = None) -> bytes:
    """A real grapevine scan (RGBA PNG), optionally downscaled."""
    from PIL import Image

    path = require_grapevine() / name / f"{name} ({index}).png"
    if size is None:
        return path.read_bytes()
    with Image.open(path) as image:
        return png_bytes(image.resize((size, size)))


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """A copy of 5 real grapevine images per class, downscaled to 96 px (fast to decode)."""
    root = tmp_path / "leaves"
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(1, 6):
            (root / name / f"{name} ({i}).png").write_bytes(leaf_bytes(name, i, 96))
    return root


def shapes_dataset(root: Path, n: int = 160, size: int = 48, seed: int = 0) -> Path:
    """A real multi-label image set: PNG files + a CelebA-style CSV of ±1 attributes.

    Attributes: ``has_circle`` (a disc vs a square), ``is_red`` (red vs blue), ``is_large``,
    ``has_stripe`` (a white bar across). Returns the CSV path.
    """
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        attrs = {a: rng.random() < 0.5 for a in ("has_circle", "is_red", "is_large", "has_stripe")}
        image = Image.new("RGB", (size, size), (rng.randint(200, 255),) * 3)
        draw = ImageDraw.Draw(image)
        r = (0.4 if attrs["is_large"] else 0.2) * size
        cx, cy = size / 2 + rng.uniform(-4, 4), size / 2 + rng.uniform(-4, 4)
        colour = (
            (rng.randint(170, 255), rng.randint(0, 60), rng.randint(0, 60))
            if attrs["is_red"]
            else (rng.randint(0, 60), rng.randint(0, 60), rng.randint(170, 255))
        )
        box = (cx - r, cy - r, cx + r, cy + r)
        (draw.ellipse if attrs["has_circle"] else draw.rectangle)(box, fill=colour)
        if attrs["has_stripe"]:
            draw.rectangle((0, size * 0.45, size, size * 0.55), fill=(255, 255, 255))
        name = f"img_{i:04d}.png"
        image.save(root / "images" / name)
        rows.append({"image_id": name, **{k: 1 if v else -1 for k, v in attrs.items()}})
    table = root / "attributes.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


@pytest.fixture(scope="session")
def grapevine_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace with a small-CNN grapevine model trained, registered and promoted."""
    from opsline import pipeline

    require_grapevine()
    home = tmp_path_factory.mktemp("ic-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        _, decision = pipeline.run(
            "image_classification", ["data=grapevine", *SMOKE, "trainer.max_epochs=2"]
        )
    assert decision.promoted, decision.reason
    return home


@pytest.fixture
def grapevine_workspace(grapevine_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSLINE_HOME", str(grapevine_home))
    return grapevine_home


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
