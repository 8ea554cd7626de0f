"""A prepared dataset: one Parquet file per split plus ``manifest.json``.

The content hash of the frames (not of the Parquet bytes, which embed writer versions) is
the data version that every run and every registered model records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import NoDatasetError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MANIFEST_FILE = "manifest.json"
REQUIRED_SPLITS = ("train", "val", "test")


def content_hash(splits: dict[str, pd.DataFrame]) -> str:
    """Deterministic sha256 over split names, column names/dtypes and every cell."""
    import pandas as pd

    digest = hashlib.sha256()
    for name in sorted(splits):
        frame = splits[name]
        digest.update(name.encode())
        digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _column_stats(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        series = frame[column]
        entry: dict[str, Any] = {"dtype": str(series.dtype), "nulls": int(series.isna().sum())}
        if series.dtype.kind in "iuf":
            described = series.describe()
            entry.update(
                {
                    k: (None if described[k] != described[k] else float(described[k]))
                    for k in ("mean", "std", "min", "max")
                }
            )
        else:
            entry["distinct"] = int(series.nunique(dropna=True))
        stats[str(column)] = entry
    return stats


@dataclass
class Dataset:
    """A prepared dataset on disk."""

    root: Path
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        """Content hash of all splits (the data version)."""
        return str(self.manifest["version"])

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def frame(self, split: str) -> pd.DataFrame:
        """Load one split as a DataFrame."""
        import pandas as pd

        if split not in self.manifest["splits"]:
            raise NoDatasetError(f"The dataset has no split {split!r}; it has {self.splits}.")
        return pd.read_parquet(self.root / f"{split}.parquet")

    def frames(self) -> dict[str, pd.DataFrame]:
        return {split: self.frame(split) for split in self.splits}


def write_dataset(
    splits: dict[str, pd.DataFrame], root: Path, recipe: str, extras: dict[str, Any] | None = None
) -> Dataset:
    """Write splits as Parquet plus a manifest; returns the dataset.

    ``extras`` (recipe-specific facts such as class counts) go into the manifest under
    ``extras``; they are not part of the data version.
    """
    missing = [s for s in REQUIRED_SPLITS if s not in splits]
    if missing:
        raise ValueError(f"recipe {recipe!r} prepared no {missing} split(s)")
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob("*.parquet"):
        stale.unlink()
    for name, frame in splits.items():
        frame.reset_index(drop=True).to_parquet(root / f"{name}.parquet", index=False)
    manifest = {
        "recipe": recipe,
        "version": content_hash({k: v.reset_index(drop=True) for k, v in splits.items()}),
        "splits": {
            name: {"rows": len(frame), "columns": _column_stats(frame)}
            for name, frame in splits.items()
        },
    }
    if extras:
        manifest["extras"] = extras
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return Dataset(root, manifest)


def load_dataset(root: Path, recipe: str) -> Dataset:
    """Open the prepared dataset at ``root``, or explain how to create it."""
    path = root / MANIFEST_FILE
    if not path.exists():
        raise NoDatasetError(
            f"No prepared dataset for {recipe!r} at {root}; "
            f"run `opsline data prepare {recipe}` first."
        )
    return Dataset(root, json.loads(path.read_text()))
