"""Datasets on disk: the content hash is the data version."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from opsline.data.dataset import content_hash, load_dataset, write_dataset
from opsline.errors import NoDatasetError


def _splits(price: float = 1.0) -> dict[str, pd.DataFrame]:
    return {
        name: pd.DataFrame({"id": [i, i + 10], "price": [price, 2.0]})
        for i, name in enumerate(["train", "val", "test"])
    }


def test_hash_is_deterministic_and_content_sensitive() -> None:
    assert content_hash(_splits()) == content_hash(_splits())
    assert content_hash(_splits()) != content_hash(_splits(price=1.5))


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    written = write_dataset(_splits(), tmp_path / "ds", "demo")
    loaded = load_dataset(tmp_path / "ds", "demo")
    assert loaded.version == written.version
    assert loaded.manifest["splits"]["train"]["rows"] == 2
    assert loaded.manifest["splits"]["train"]["columns"]["price"]["max"] == 2.0
    pd.testing.assert_frame_equal(loaded.frame("val"), _splits()["val"].reset_index(drop=True))


def test_missing_dataset_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(NoDatasetError, match="opsline data prepare demo"):
        load_dataset(tmp_path / "nothing", "demo")


def test_required_splits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="test"):
        write_dataset({"train": _splits()["train"], "val": _splits()["val"]}, tmp_path, "demo")
