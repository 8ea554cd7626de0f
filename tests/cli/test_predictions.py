"""``opsline predictions export|prune`` over a log filled by hand."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from opsline.cli import app
from opsline.monitoring.prediction_log import LogRow, PredictionLog


@pytest.fixture
def log_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
    monkeypatch.setenv("OPSLINE_PREDICTION_LOG_URI", uri)
    store = PredictionLog.open(uri)
    now = time.time()
    store.write(
        [
            LogRow(
                f"old-{i}",
                now - 3 * 86400,
                "house_price",
                "1",
                {"gr_liv_area": 1000.0 + i, "neighborhood": "NAmes"},
                '{"price": 1.0}',
                1.0,
            )
            for i in range(3)
        ]
    )
    store.write(
        [
            LogRow(
                f"new-{i}",
                now,
                "house_price",
                "2",
                {"gr_liv_area": 2000.0 + i, "neighborhood": "OldTown"},
                '{"price": 2.0}',
                2.0,
            )
            for i in range(2)
        ]
    )
    store.add_feedback([("new-1", 210000.0)])
    store.close()
    return uri


def test_export_writes_every_row_with_features_and_feedback(log_uri: str, tmp_path: Path) -> None:
    out = tmp_path / "export" / "log.parquet"
    result = CliRunner().invoke(app, ["predictions", "export", "house_price", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"Wrote 5 predictions of house_price (1 with feedback) to {out}" in result.output
    frame = pd.read_parquet(out)
    assert list(frame["request_id"]) == ["old-0", "old-1", "old-2", "new-0", "new-1"]
    assert list(frame["feature.gr_liv_area"]) == [1000.0, 1001.0, 1002.0, 2000.0, 2001.0]
    assert frame.loc[frame.request_id == "new-1", "actual"].item() == "210000.0"


def test_export_since_keeps_the_recent_rows(log_uri: str, tmp_path: Path) -> None:
    out = tmp_path / "recent.parquet"
    result = CliRunner().invoke(
        app, ["predictions", "export", "house_price", "-o", str(out), "--since", "24h"]
    )
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out)["request_id"]) == ["new-0", "new-1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "1000"], "--since takes a time span"),
        (["--since", "soon"], "Invalid drift window"),
    ],
)
def test_bad_options_are_one_sentence(log_uri: str, tmp_path: Path, args, message) -> None:
    result = CliRunner().invoke(
        app, ["predictions", "export", "house_price", "-o", str(tmp_path / "x.parquet"), *args]
    )
    assert result.exception.exit_code == 2 and message in str(result.exception)


def test_prune_applies_the_retention(log_uri: str) -> None:
    result = CliRunner().invoke(app, ["predictions", "prune", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "Deleted 3 predictions" in result.output
    assert PredictionLog.open(log_uri).count("house_price") == 2
