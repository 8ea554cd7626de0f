"""The prediction log and feedback, through the real app (stand-in recipe, SQLite log)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from opsline.monitoring.prediction_log import PredictionLog

from .conftest import stub_client

KEY = {"X-API-Key": "k"}


@pytest.fixture
def log_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


def rows_by_id(uri: str) -> dict[str, dict]:
    frame = PredictionLog.open(uri).frame("stub")
    return {row["request_id"]: row for row in frame.to_dict("records")}


def test_every_answer_carries_a_request_id_and_is_logged_under_it(
    stub_model_dir: Path, log_uri: str
) -> None:
    with stub_client(str(stub_model_dir), prediction_log_uri=log_uri) as client:
        generated = client.post("/predict", json={"x": 3})
        given = client.post(
            "/predict", json={"x": 4, "label": "b"}, headers={"X-Request-ID": "order-17"}
        )
        bad = client.post("/predict", json={"x": 5}, headers={"X-Request-ID": "no spaces!"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-ID"])
    assert given.headers["X-Request-ID"] == "order-17"
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["X-Request-ID"])  # replaced, still served
    # Generated ids start with the time in ms: they sort in arrival order.
    assert generated.headers["X-Request-ID"][:12] <= bad.headers["X-Request-ID"][:12]
    assert abs(int(bad.headers["X-Request-ID"][:12], 16) / 1000 - time.time()) < 60
    rows = rows_by_id(log_uri)
    assert set(rows) == {generated.headers["X-Request-ID"], "order-17", bad.headers["X-Request-ID"]}
    row = rows["order-17"]
    assert (row["model"], row["version"], row["role"]) == ("stub", None, "primary")
    assert (row["feature.x"], row["feature.label"], row["feature.y"]) == (4.0, "b", 8.0)
    assert json.loads(row["prediction"]) == {"y": 8.0}
    assert json.loads(row["request"]) == {"x": 4.0, "label": "b"}
    assert row["predicted_value"] == 8.0 and row["latency_ms"] > 0


def test_batch_items_are_logged_as_id_slash_index_and_failed_rows_are_not(
    stub_model_dir: Path, log_uri: str
) -> None:
    with stub_client(str(stub_model_dir), prediction_log_uri=log_uri) as client:
        ok = client.post(
            "/predict/batch", json={"items": [{"x": 1}, {"x": 2}]}, headers={"X-Request-ID": "b1"}
        )
        failing = client.post(
            "/predict/batch", json={"items": [{"x": 1}, {"x": 13}]}, headers={"X-Request-ID": "b2"}
        )
    assert ok.status_code == 200 and failing.status_code == 500  # x=13 makes the stub raise
    rows = rows_by_id(log_uri)
    assert rows["b1/0"]["feature.y"] == 2.0 and rows["b1/1"]["feature.y"] == 4.0
    # The failing call's good row was answered inside the batch (and logged); the bad one
    # is an error, not a prediction.
    assert "b2/1" not in rows and "b2/0" in rows


def test_a_broken_log_never_costs_a_prediction(stub_model_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log's directory should be")
    uri = f"sqlite:///{blocker / 'log.db'}"
    with stub_client(str(stub_model_dir), prediction_log_uri=uri) as client:
        answers = [client.post("/predict", json={"x": i}) for i in range(3)]
        metrics = client.get("/metrics").text
        model = client.get("/model").json()
    assert [a.status_code for a in answers] == [200] * 3
    assert _sample(metrics, "opsline_prediction_log_errors_total") >= 1
    assert _sample(metrics, "opsline_prediction_log_dropped_rows_total") == 3
    assert model["monitoring"]["prediction_log"]["ok"] is False
    assert model["monitoring"]["prediction_log"]["last_error"]


def test_logging_can_be_switched_off(stub_model_dir: Path, log_uri: str) -> None:
    with stub_client(
        str(stub_model_dir), prediction_log=False, prediction_log_uri=log_uri
    ) as client:
        assert client.post("/predict", json={"x": 1}).status_code == 200
    assert PredictionLog.open(log_uri).count("stub") == 0


# -- feedback --------------------------------------------------------------------------------
@pytest.fixture
def client(stub_model_dir: Path, log_uri: str):
    with stub_client(str(stub_model_dir), prediction_log_uri=log_uri, api_key="k") as c:
        for i in range(4):  # y = 2x: ids p0..p3 predicted 0, 2, 4, 6
            c.post("/predict", json={"x": i}, headers={"X-Request-ID": f"p{i}"})
        yield c


def test_feedback_is_stored_and_scored_live(client, log_uri: str) -> None:
    one = client.post("/feedback", json={"request_id": "p1", "actual": 3}, headers=KEY)
    assert one.status_code == 200, one.text
    assert one.json()["items"] == [{"request_id": "p1", "status": "created"}]
    assert one.json()["quality"] == {"mae": 1.0}
    many = client.post(
        "/feedback",
        json=[{"request_id": "p2", "actual": 4.0}, {"request_id": "p3", "actual": 7.5}],
        headers=KEY,
    )
    assert many.json()["created"] == 2
    assert many.json()["quality"]["mae"] == pytest.approx((1 + 0 + 1.5) / 3)
    metrics = client.get("/metrics").text
    assert _sample(metrics, 'opsline_live_quality{metric="mae"}') == pytest.approx(2.5 / 3)
    assert _sample(metrics, "opsline_live_quality_rows") == 3
    assert _sample(metrics, 'opsline_feedback_total{outcome="created"}') == 3
    assert client.get("/model").json()["monitoring"]["quality"]["rows"] == 3
    labelled = PredictionLog.open(log_uri).labelled("stub")
    assert [(r.request_id, r.actual) for r in labelled] == [("p1", 3), ("p2", 4.0), ("p3", 7.5)]


def test_second_feedback_for_an_id_replaces_the_first(client, log_uri: str) -> None:
    client.post("/feedback", json={"request_id": "p1", "actual": 9}, headers=KEY)
    again = client.post("/feedback", json={"request_id": "p1", "actual": 2}, headers=KEY)
    assert again.status_code == 200
    assert again.json()["items"][0]["status"] == "updated"
    assert [r.actual for r in PredictionLog.open(log_uri).labelled("stub")] == [2]


def test_unknown_request_id_is_404_and_nothing_is_stored(client, log_uri: str) -> None:
    response = client.post(
        "/feedback",
        json=[{"request_id": "p0", "actual": 0}, {"request_id": "nope", "actual": 1}],
        headers=KEY,
    )
    assert response.status_code == 404
    assert "nope" in response.json()["detail"] and "nothing was stored" in response.json()["detail"]
    assert PredictionLog.open(log_uri).labelled("stub") == []


@pytest.mark.parametrize("actual", ["3", True, None, [1]])
def test_feedback_of_the_wrong_type_is_422_naming_actual(client, actual) -> None:
    response = client.post("/feedback", json={"request_id": "p1", "actual": actual}, headers=KEY)
    assert response.status_code == 422
    assert any("actual" in error["loc"] for error in response.json()["detail"])


def test_feedback_needs_the_api_key(client, stub_model_dir: Path, log_uri: str) -> None:
    assert client.post("/feedback", json={"request_id": "p1", "actual": 1}).status_code == 401
    with stub_client(str(stub_model_dir), prediction_log_uri=log_uri) as keyless:
        refused = keyless.post("/feedback", json={"request_id": "p1", "actual": 1})
    assert refused.status_code == 503


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or (line.startswith(name + "{") and name.endswith("}")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")
