"""Raw images → inspected, de-duplicated, deterministically stratified train/val/test frames.

Each row keeps a pointer to its image (``path``, or the encoded bytes in ``image``), its
labels, and what decoding found: ``width``, ``height``, ``mode`` (before conversion),
``format``, ``pixel_hash`` and ``error`` (None when the image decodes). Undecodable images
are *kept* with their error so validation can name them and stop training — a silently
dropped file is lost data. ``pixel_hash`` is part of every row, so the data version (the
content hash of the frames) changes when any image's pixels change.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import UsageError
from opsline.recipes.image_classification.sources import ATTR_PREFIX, RawImages, load

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SPLITS = ("train", "val", "test")


def image_bytes(row: Any) -> bytes:
    """The encoded image of one dataset row (a dict, a namedtuple or a Series)."""
    get = row.get if hasattr(row, "get") else lambda k, d=None: getattr(row, k, d)
    inline = get("image", None)
    if isinstance(inline, (bytes, bytearray)):
        return bytes(inline)
    return Path(get("path")).read_bytes()


def decode_limits(data_cfg: Any) -> dict[str, Any]:
    """Keyword arguments for ``images.decode`` from the data config."""
    from opsline.recipes.image_classification import images

    return {
        "min_size": int(data_cfg.get("min_size", images.MIN_SIZE)),
        "formats": tuple(
            str(f).upper() for f in data_cfg.get("formats") or (*images.SERVING_FORMATS, "BMP")
        ),
        "modes": tuple(data_cfg.get("modes") or images.ALLOWED_MODES),
        "max_bytes": int(data_cfg.get("max_bytes", images.MAX_BYTES)),
        "max_pixels": int(data_cfg.get("max_pixels", images.MAX_PIXELS)),
    }


def inspect(frame: pd.DataFrame, data_cfg: Any) -> pd.DataFrame:
    """Decode every image once; add width/height/mode/format/pixel_hash/error columns."""
    from opsline.recipes.image_classification import images

    limits = decode_limits(data_cfg)
    # Size and mode belong to validation (to report them), so decoding accepts them here.
    decode_kwargs = {
        **limits,
        "min_size": 1,
        "modes": ("RGB", "RGBA", "L", "LA", "P", "PA", "1", "CMYK", "I", "I;16", "F", "YCbCr"),
    }
    found: dict[str, list[Any]] = {
        k: [] for k in ("width", "height", "mode", "format", "pixel_hash", "error")
    }
    for row in frame.to_dict("records"):
        try:
            decoded = images.decode(image_bytes(row), **decode_kwargs)
            values = [
                decoded.width,
                decoded.height,
                decoded.mode,
                decoded.format,
                images.pixel_hash(decoded.image),
                None,
            ]
        except images.ImageError as error:
            values = [0, 0, "", "", None, f"{row['item']}: {error.code}: {error}"]
        except OSError as error:
            values = [0, 0, "", "", None, f"{row['item']}: unreadable: {error}"]
        for key, value in zip(found, values, strict=True):
            found[key].append(value)
    out = frame.copy()
    for key, values in found.items():
        out[key] = values
    out["width"] = out["width"].astype("int64")
    out["height"] = out["height"].astype("int64")
    return out


def drop_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the first row of each picture (by pixel hash); undecodable rows are all kept."""
    hashed = frame["pixel_hash"].notna()
    duplicated = hashed & frame["pixel_hash"].duplicated(keep="first")
    return frame[~duplicated].reset_index(drop=True), int(duplicated.sum())


def _strata(frame: pd.DataFrame, task: str) -> Any:
    """Stratification labels: the class, or for multi-label the rarest positive attribute."""
    if task == "multiclass":
        return frame["label"]
    columns = [c for c in frame.columns if c.startswith(ATTR_PREFIX)]
    counts = frame[columns].clip(lower=0).sum()
    order = counts.sort_values(kind="mergesort").index  # rarest first
    return frame[columns].apply(lambda r: next((c for c in order if r[c] == 1), "none"), axis=1)


def _split(
    frame: pd.DataFrame, fraction: float, task: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    strata = _strata(frame, task)
    counts = Counter(strata)
    # Stratify only when every stratum can appear on both sides; otherwise a seeded shuffle.
    n_holdout = round(len(frame) * fraction)
    ok = (
        min(counts.values()) >= 2
        and n_holdout >= len(counts)
        and len(frame) - n_holdout >= len(counts)
    )
    keep, held = train_test_split(
        frame, test_size=fraction, random_state=seed, stratify=strata if ok else None
    )
    return keep, held


def split(
    frame: pd.DataFrame, task: str, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Deterministic stratified split; an ``official`` column (e.g. Fashion-MNIST's own
    train/test) is respected: its test rows are the test split, val comes from train."""
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UsageError(
            "data.val_fraction and data.test_fraction must be in (0, 1) and sum "
            f"to less than 1, got {val_fraction} and {test_fraction}."
        )
    if "official" in frame.columns:
        test = frame[frame["official"] == "test"]
        rest, val = _split(frame[frame["official"] != "test"], val_fraction, task, seed)
    else:
        rest, test = _split(frame, test_fraction, task, seed)
        rest, val = _split(rest, val_fraction / (1 - test_fraction), task, seed)
    parts = {"train": rest, "val": val, "test": test}
    # Sorted by item: the frames (and so the data version) do not depend on shuffle order.
    return {
        name: part.sort_values("item", kind="mergesort").reset_index(drop=True)
        for name, part in parts.items()
    }


def prepare(cfg: Any) -> dict[str, pd.DataFrame]:
    """``data`` config → ``{"train", "val", "test"}`` frames (see the module docstring)."""
    data_cfg = cfg.data
    raw: RawImages = load(data_cfg)
    if len(raw.frame) == 0:
        raise UsageError(f"data source {data_cfg.get('source')!r} produced no images.")
    frame = inspect(raw.frame, data_cfg)
    dropped = 0
    if str(data_cfg.get("duplicates", "fail")) == "drop":
        frame, dropped = drop_duplicates(frame)
    frames = split(
        frame,
        raw.task,
        float(data_cfg.get("val_fraction", 0.2)),
        float(data_cfg.get("test_fraction", 0.2)),
        int(data_cfg.get("split_seed", 42)),
    )
    frames["train"].attrs["opsline_notes"] = {**raw.notes, "duplicates_dropped": dropped}
    return frames


def label_space(cfg: Any, frame: pd.DataFrame | None) -> tuple[str, list[str]]:
    """``(task, names)``: the declared classes / attributes, else those found in ``frame``
    (sorted), else ``[]`` (no frame to look at: nothing declared)."""
    task = str(cfg.data.get("task", "multiclass"))
    declared = cfg.data.get("classes")
    if declared:
        return task, [str(c) for c in declared]
    if frame is None:
        return task, []
    if task == "multilabel":
        return task, [c[len(ATTR_PREFIX) :] for c in frame.columns if c.startswith(ATTR_PREFIX)]
    return task, sorted(str(v) for v in frame["label"].dropna().unique())


def summary(cfg: Any, frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Class counts per split (the class-balance report) and how the data was built."""
    task, names = label_space(cfg, frames["train"])
    counts: dict[str, dict[str, int]] = {}
    for split_name, frame in frames.items():
        if task == "multiclass":
            found = frame["label"].value_counts()
            counts[split_name] = {n: int(found.get(n, 0)) for n in names}
            extra = sorted(set(found.index) - set(names))
            counts[split_name].update({str(n): int(found[n]) for n in extra})
        else:
            counts[split_name] = {
                n: int((frame[ATTR_PREFIX + n] == 1).sum())
                for n in names
                if ATTR_PREFIX + n in frame.columns
            }
    train = counts.get("train", {})
    present = [v for v in train.values() if v > 0]
    notes = frames["train"].attrs.get("opsline_notes", {})
    return {
        "task": task,
        "source": str(cfg.data.get("source")),
        "name": str(cfg.data.name),
        "classes": names,
        "class_counts": counts,
        "train_imbalance_ratio": round(max(present) / min(present), 3) if present else None,
        **dict(notes.items()),
    }
