"""Raw image sources behind one interface: ``load(data_cfg) -> RawImages``.

Every source yields one row per image with either ``path`` (an image file on disk) or
``image`` (the encoded file bytes, for sources that are not files), and its labels:

* ``imagefolder`` — a directory with one sub-folder per class (``Ak/*.png`` …);
* ``fashion_mnist`` — the four IDX files (``*-idx?-ubyte[.gz]``), e.g. from Debian's
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) or downloaded when
  ``download: true``. The 28×28 pixel arrays are stored as PNG bytes in the ``image``
  column (≈ 25 MB for all 70,000), so training and serving decode the same PNG format
  and the prepared dataset is self-contained (no 70,000 loose files in the workspace);
* ``attribute_table`` — a CelebA-style table: an image file name column plus one ±1
  (or 0/1) column per attribute, as CSV or CelebA's ``list_attr_celeba.txt``; multi-label.

Multi-class rows carry ``label`` (the class name); multi-label rows carry one 0/1 column
``attr_<name>`` per attribute.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import NoDatasetError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SOURCES = ("imagefolder", "fashion_mnist", "attribute_table")
ATTR_PREFIX = "attr_"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


@dataclass
class RawImages:
    """Rows of images with labels; ``official`` (if a column) is the source's own split."""

    frame: pd.DataFrame
    task: str  # multiclass | multilabel
    classes: list[str]  # class names, or attribute names for multi-label
    notes: dict[str, Any] = field(default_factory=dict)


def _existing(path: Any, what: str) -> Path:
    if not path:
        raise UsageError(f"data.path is not set: give the {what} as data.path=/path/to/it.")
    resolved = Path(str(path)).expanduser()
    if not resolved.exists():
        raise NoDatasetError(f"data.path {str(resolved)!r} ({what}) does not exist.")
    return resolved


def imagefolder(root: Path) -> RawImages:
    """One sub-folder per class; files sorted, so the row order (and split) is stable."""
    import pandas as pd

    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise NoDatasetError(
            f"{str(root)!r} has no class sub-folders (expected e.g. {root}/<class>/<image>.png)."
        )
    rows = [
        {"item": f"{c}/{f.name}", "path": str(f.resolve()), "label": c}
        for c in classes
        for f in sorted((root / c).iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    return RawImages(
        pd.DataFrame(rows, columns=["item", "path", "label"]),
        "multiclass",
        classes,
        {"root": str(root)},
    )


def _idx(path: Path) -> Any:
    """Read an IDX file (optionally gzipped) into a uint8 numpy array."""
    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise NoDatasetError(f"{str(path)!r} is not an unsigned-byte IDX file.")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _download_fashion(target: Path) -> Path:
    import urllib.request

    target.mkdir(parents=True, exist_ok=True)
    for stems in FASHION_FILES.values():
        for stem in stems:
            if _find(target, stem) is None:
                urllib.request.urlretrieve(f"{FASHION_URL}{stem}.gz", target / f"{stem}.gz")
    return target


def fashion_mnist(
    root: Path | None, download: bool = False, limit: dict | None = None
) -> RawImages:
    """The IDX files as PNG bytes; ``official`` is the source's train/test split.

    ``limit`` (``{"train": n, "test": m}``) keeps the first n/m images of each official
    split — for quick runs and tests, never for reported numbers.
    """
    import pandas as pd
    from PIL import Image

    from opsline.recipes.image_classification.images import encode_png
    from opsline.workspace import home

    if root is None or not any(_find(root, s[0]) for s in FASHION_FILES.values()):
        if not download:
            raise NoDatasetError(
                f"No Fashion-MNIST IDX files in {str(root)!r}. Install them with "
                "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu, into "
                "/usr/share/datasets/fashion-mnist) or set data.download=true."
            )
        root = _download_fashion(home() / "downloads" / "fashion-mnist")
    rows = []
    for split, (images_stem, labels_stem) in FASHION_FILES.items():
        image_file, label_file = _find(root, images_stem), _find(root, labels_stem)
        if image_file is None or label_file is None:
            raise NoDatasetError(f"Fashion-MNIST {split} files are missing in {str(root)!r}.")
        pixels, labels = _idx(image_file), _idx(label_file)
        count = len(labels) if not limit or limit.get(split) is None else int(limit[split])
        for i in range(min(count, len(labels))):
            rows.append(
                {
                    "item": f"{split}/{i:05d}",
                    "official": split,
                    "image": encode_png(Image.fromarray(pixels[i], mode="L")),
                    "label": FASHION_CLASSES[int(labels[i])],
                }
            )
    return RawImages(pd.DataFrame(rows), "multiclass", list(FASHION_CLASSES), {"root": str(root)})


def _read_table(path: Path, image_column: str | None) -> tuple[Any, str]:
    import pandas as pd

    if path.suffix.lower() == ".txt":  # CelebA list_attr_celeba.txt: count, names, rows
        with open(path) as handle:
            lines = handle.read().splitlines()
        names = lines[1].split()
        rows = [line.split() for line in lines[2:] if line.strip()]
        table = pd.DataFrame(rows, columns=["image_id", *names])
        for name in names:
            table[name] = table[name].astype(int)
        return table, "image_id"
    table = pd.read_csv(path)
    column = image_column or table.columns[0]
    if column not in table.columns:
        raise UsageError(
            f"data.image_column {column!r} is not a column of {str(path)!r}; "
            f"columns: {', '.join(map(str, table.columns[:10]))}."
        )
    return table, column


def attribute_table(
    table_path: Path, image_dir: Path | None, image_column: str | None, attributes: list[str] | None
) -> RawImages:
    """Multi-label rows; ±1 and 0/1 columns both become 0/1 ``attr_<name>`` columns."""
    import pandas as pd

    table, column = _read_table(table_path, image_column)
    names = list(attributes) if attributes else [c for c in table.columns if c != column]
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise UsageError(f"Attributes {missing} are not columns of {str(table_path)!r}.")
    folder = image_dir or table_path.parent
    frame = pd.DataFrame(
        {
            "item": table[column].astype(str),
            "path": [str((folder / str(f)).resolve()) for f in table[column]],
        }
    )
    for name in names:
        values = pd.to_numeric(table[name], errors="coerce")
        # ±1 (CelebA) -> 1/0; 0/1 stays; anything else becomes -1 and fails validation.
        frame[ATTR_PREFIX + name] = values.map({1: 1, -1: 0, 0: 0}).fillna(-1).astype("int8")
    return RawImages(frame, "multilabel", names, {"table": str(table_path)})


def load(data_cfg: Any) -> RawImages:
    """The raw rows of the source chosen by ``data.source``."""
    source = data_cfg.get("source")
    if source == "imagefolder":
        return imagefolder(_existing(data_cfg.get("path"), "image folder"))
    if source == "fashion_mnist":
        path = data_cfg.get("path")
        limit = data_cfg.get("limit")
        return fashion_mnist(
            Path(path).expanduser() if path else None,
            bool(data_cfg.get("download", False)),
            dict(limit) if limit else None,
        )
    if source == "attribute_table":
        table = _existing(data_cfg.get("path"), "attribute table (CSV or list_attr_celeba.txt)")
        image_dir = data_cfg.get("image_dir")
        attributes = data_cfg.get("classes")
        return attribute_table(
            table,
            _existing(image_dir, "image folder") if image_dir else None,
            data_cfg.get("image_column"),
            list(attributes) if attributes else None,
        )
    raise UsageError(f"Unknown data.source {source!r}. Valid sources: {', '.join(SOURCES)}.")
