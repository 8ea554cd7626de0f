"""``opsline monitor compare`` over a prediction log filled by hand (house_price rows)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsline.cli import app
from opsline.monitoring.prediction_log import LogRow, PredictionLog

# request id -> (served model's price, shadow's price); feedback on a and d only.
PRICES = {
    "a": (100_000.0, 105_000.0),
    "b": (200_000.0, 260_000.0),
    "c": (300_000.0, 300_000.0),
    "d": (400_000.0, 360_000.0),
}


def row(request_id: str, price: float, version: str, role: str) -> LogRow:
    return LogRow(
        request_id,
        time.time(),
        "house_price",
        version,
        {},
        json.dumps({"predicted_price": price, "price_per_sqft": 1.0, "model_kind": "gbm"}),
        price,
        role=role,
    )


@pytest.fixture
def log_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'log.db'}"
    monkeypatch.setenv("OPSLINE_PREDICTION_LOG_URI", uri)
    return uri


def test_compare_prints_agreement_and_each_models_error(log_uri: str) -> None:
    store = PredictionLog.open(log_uri)
    store.write([row(i, p, "3", "primary") for i, (p, _) in PRICES.items()])
    store.write(
        [row(i, s, "4", "shadow") for i, (_, s) in PRICES.items()]
        + [row("lonely", 1.0, "3", "primary")]
    )  # no shadow row: not compared
    store.add_feedback([("a", 105_000.0), ("d", 360_000.0)])
    store.close()

    result = CliRunner().invoke(app, ["monitor", "compare", "house_price"])
    assert result.exit_code == 0, result.output
    # Relative differences 5 %, 30 %, 0 %, 10 %: three within ±10 %, median 7.5 %.
    assert "4 requests answered by both models" in result.output
    assert "primary version 3, shadow version 4" in result.output
    assert "Agreement: 75.0% (3 of 4)" in result.output and "±10 %" in result.output
    assert "Median relative difference 7.5%" in result.output
    assert "On the 2 with feedback" in result.output and "within_10pct" in result.output

    as_json = CliRunner().invoke(
        app, ["monitor", "compare", "house_price", "--json", "--window", "24h"]
    )
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.output)
    assert (summary["compared"], summary["agreeing"], summary["labelled"]) == (4, 3, 2)
    # The shadow is exact on both labelled houses; the served model is off on both.
    assert summary["quality"]["shadow"]["rmsle"] == pytest.approx(0.0, abs=1e-9)
    assert summary["quality"]["shadow"]["within_10pct"] == 1.0
    assert summary["quality"]["primary"]["rmsle"] > 0.05
    assert summary["quality"]["primary"]["within_10pct"] == 0.5  # a within 10 %, d not


def test_nothing_to_compare_is_exit_2_with_one_sentence(log_uri: str) -> None:
    PredictionLog.open(log_uri).write([row("a", 1.0, "3", "primary")])
    result = CliRunner().invoke(app, ["monitor", "compare", "house_price"])
    assert result.exception.exit_code == 2
    message = str(result.exception)
    assert message.startswith("No shadow predictions logged for house_price")
    assert "OPSLINE_SHADOW_MODEL_URI=" in message and "\n" not in message


def test_a_bad_window_is_exit_2(log_uri: str) -> None:
    result = CliRunner().invoke(app, ["monitor", "compare", "house_price", "--window", "soon"])
    assert result.exception.exit_code == 2 and "soon" in str(result.exception)
