"""The shadow model: a candidate scores every batch off the response path and is compared.

The served model is the stand-in y = 2x; the shadow is the same recipe with slope 3, so every
answer can be checked by hand.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from opsline.monitoring.compare import compare
from opsline.monitoring.prediction_log import PredictionLog
from opsline.recipes.base import Predictor
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

from .conftest import StubPredictor, StubRecipe, stub_client

KEY = {"X-API-Key": "k"}


def model_dir(root: Path, slope: float, **extra: object) -> Path:
    folder = root / f"slope-{slope}"
    folder.mkdir()
    (folder / "stub.json").write_text(json.dumps({"slope": slope, **extra}))
    return folder


@pytest.fixture
def log_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.db'}"


def drained(client) -> None:
    assert client.app.state.shadow.drain(timeout=30), "the shadow did not catch up in 30 s"


def by_role(uri: str, model: str = "stub") -> dict[str, dict[str, dict]]:
    frame = PredictionLog.open(uri).frame(model)
    rows: dict[str, dict[str, dict]] = {"primary": {}, "shadow": {}}
    for row in frame.to_dict("records"):
        rows[row["role"]][row["request_id"]] = row
    return rows


def test_clients_get_the_primary_and_the_log_gets_both(
    stub_model_dir: Path, tmp_path: Path, log_uri: str
) -> None:
    shadow_dir = model_dir(tmp_path, 3.0)
    with stub_client(
        str(stub_model_dir),
        prediction_log_uri=log_uri,
        api_key="k",
        shadow_model_uri=str(shadow_dir),
    ) as client:
        answers = [
            client.post("/predict", json={"x": x}, headers={"X-Request-ID": f"p{x}"})
            for x in range(4)
        ]
        batch = client.post(
            "/predict/batch", json={"items": [{"x": 5}, {"x": 13}]}, headers={"X-Request-ID": "b"}
        )  # x=13: the stub raises
        drained(client)
        rows = by_role(log_uri)
        comparison = compare(PredictionLog.open(log_uri), "stub", StubRecipe())
        fed = client.post(
            "/feedback",
            json=[{"request_id": "p1", "actual": 3}, {"request_id": "p2", "actual": 5}],
            headers=KEY,
        )
        after_feedback = compare(PredictionLog.open(log_uri), "stub", StubRecipe())
        shown = client.get("/model").json()["monitoring"]["shadow"]
        metrics = client.get("/metrics").text

    assert [a.json() for a in answers] == [{"y": 2.0 * x} for x in range(4)]  # primary only
    assert batch.status_code == 500
    # One shadow row per answered primary row, same ids, the shadow's own answer.
    assert set(rows["shadow"]) == set(rows["primary"]) == {"p0", "p1", "p2", "p3", "b/0"}
    for request_id, row in rows["shadow"].items():
        x = rows["primary"][request_id]["feature.x"]
        assert row["feature.x"] == x
        assert json.loads(row["prediction"]) == {"y": 3.0 * x}
        assert json.loads(rows["primary"][request_id]["prediction"]) == {"y": 2.0 * x}
        assert (row["model"], row["version"]) == ("stub", None)

    # 3x vs 2x differs by 50 % of the primary's value, except at x = 0 (both 0).
    assert comparison.compared == 5
    assert comparison.rule == "value" and "10 %" in comparison.rule_text
    assert comparison.agreeing == 1 and comparison.agreement == pytest.approx(1 / 5)
    assert comparison.median_relative_difference == pytest.approx(0.5)
    assert comparison.labelled == 0 and comparison.quality == {}
    assert comparison.primary_versions == comparison.shadow_versions == [None]

    assert fed.status_code == 200, fed.text
    # actual 3 and 5 for x = 1, 2: primary 2, 4 (mae 1); shadow 3, 6 (mae 0.5).
    assert after_feedback.labelled == 2
    assert after_feedback.quality == {
        "primary": {"mae": pytest.approx(1.0)},
        "shadow": {"mae": pytest.approx(0.5)},
    }
    assert json.loads(json.dumps(after_feedback.to_dict()))["quality"]["shadow"]["mae"] == 0.5
    assert "Agreement: 20.0%" in after_feedback.summary()

    assert shown["state"] == "ready" and shown["error"] is None
    assert shown["rows_scored"] == 5 and shown["rows_skipped"] == 0
    assert _sample(metrics, "opsline_shadow_rows_total") == 5
    assert _sample(metrics, "opsline_shadow_skipped_rows_total") == 0
    # Inference figures stay the primary's: its [5, 13] batch and the retried 13 failed.
    assert _sample(metrics, "opsline_inference_errors_total") == 2
    assert PredictionLog.open(log_uri).shadow_count("stub", None) == 5
    assert PredictionLog.open(log_uri).shadow_count("stub", "7") == 0


def test_a_broken_shadow_never_stops_the_primary(
    stub_model_dir: Path, tmp_path: Path, log_uri: str
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()  # no stub.json: the recipe cannot load it
    with stub_client(
        str(stub_model_dir), prediction_log_uri=log_uri, shadow_model_uri=str(broken)
    ) as client:
        drained(client)
        answers = [client.post("/predict", json={"x": x}) for x in range(3)]
        shown = client.get("/model").json()["monitoring"]["shadow"]
    assert [a.status_code for a in answers] == [200] * 3
    assert shown["state"] == "failed" and not shown["loaded"]
    assert "stub.json" in shown["error"] and str(broken) in shown["error"]
    rows = by_role(log_uri)
    assert len(rows["primary"]) == 3 and rows["shadow"] == {}


class GatedPredictor(StubPredictor):
    """A shadow that cannot finish a batch until the test opens the gate."""

    gate = threading.Event()
    calls_done = 0

    def predict(self, requests: Sequence[BaseModel]) -> list[BaseModel]:
        assert GatedPredictor.gate.wait(30), "the test never opened the gate"
        GatedPredictor.calls_done += 1
        return super().predict(requests)


class GatedRecipe(StubRecipe):
    def load_predictor(self, model_dir: Path, backend: str = "auto") -> Predictor:
        slope = json.loads((model_dir / "stub.json").read_text())["slope"]
        return GatedPredictor(slope) if slope == 3.0 else StubPredictor(slope)


def test_a_slow_shadow_skips_what_its_queue_cannot_hold(
    stub_model_dir: Path, tmp_path: Path, log_uri: str
) -> None:
    from fastapi.testclient import TestClient

    GatedPredictor.gate.clear()
    GatedPredictor.calls_done = 0
    settings = ServingSettings(
        recipe="stub",
        model_uri=str(stub_model_dir),
        ui=False,
        prediction_log_uri=log_uri,
        shadow_max_queue=3,
        shadow_model_uri=str(model_dir(tmp_path, 3.0)),
    )
    app = create_app(settings, recipe=GatedRecipe())
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            drained(client)  # loaded: from here on the first shadow batch blocks
            answers = [client.post("/predict", json={"x": x}) for x in range(10)]
            # Every primary answer came back while the shadow had not finished one batch.
            assert GatedPredictor.calls_done == 0
            held = client.get("/model").json()["monitoring"]["shadow"]
            GatedPredictor.gate.set()
            drained(client)
            shown = client.get("/model").json()["monitoring"]["shadow"]
            metrics = client.get("/metrics").text
    finally:
        GatedPredictor.gate.set()
    assert [a.json() for a in answers] == [{"y": 2.0 * x} for x in range(10)]
    assert held["queued_rows"] <= 3
    # The shadow holds one batch (at most a full queue: it takes what waits) and three
    # rows queue behind it; the rest were skipped, counted, and cost the primary nothing.
    skipped = shown["rows_skipped"]
    assert 10 - 2 * 3 <= skipped < 10
    assert shown["rows_scored"] == 10 - skipped
    assert _sample(metrics, "opsline_shadow_skipped_rows_total") == skipped
    assert _sample(metrics, "opsline_shadow_rows_total") == 10 - skipped
    rows = by_role(log_uri)
    assert len(rows["primary"]) == 10 and len(rows["shadow"]) == 10 - skipped
    assert set(rows["shadow"]) <= set(rows["primary"])


def test_shadow_rows_are_logged_under_the_primarys_name(tmp_path: Path, log_uri: str) -> None:
    """A shadow loaded from a directory still pairs with a primary served from the registry
    (model ``grapevine``): the log names the primary's model, the shadow's version."""
    from opsline.serving.batcher import BatchOutcome
    from opsline.serving.prediction_recorder import PredictionRecorder
    from opsline.serving.runtime import LoadedModel
    from opsline.serving.shadow import ShadowScorer

    from .conftest import StubRequest

    recipe = StubRecipe()
    settings = ServingSettings(
        recipe="stub", prediction_log_uri=log_uri, shadow_model_uri=str(model_dir(tmp_path, 3.0))
    )
    recorder = PredictionRecorder(recipe, settings)
    recorder.open()
    primary = LoadedModel(
        StubPredictor(2.0), name="grapevine", uri="models:/grapevine@production", version="4"
    )
    requests = [StubRequest(x=1), StubRequest(x=2)]
    results = primary.predictor.predict(requests)
    outcome = BatchOutcome(primary, requests, results, 0.001, ["r0", "r1"], [0.001, 0.001])
    recorder(outcome)
    scorer = ShadowScorer(recipe, settings, recorder)
    scorer.start()
    try:
        scorer(outcome)
        assert scorer.drain(timeout=30)
    finally:
        scorer.stop()
        recorder.log.close()
    pairs = PredictionLog.open(log_uri).pairs("grapevine")
    assert [
        (p["request_id"], p["primary_version"], p["shadow_version"], p["shadow_value"])
        for p in pairs
    ] == [("r0", "4", None, 3.0), ("r1", "4", None, 6.0)]


def test_compare_on_labels_and_on_identical_answers(log_uri: str) -> None:
    from opsline.monitoring.prediction_log import LogRow

    def rows(request_id: str, primary: dict, shadow: dict) -> list[LogRow]:
        return [
            LogRow(request_id, 1.0, "m", "1", {}, json.dumps(primary)),
            LogRow(request_id, 2.0, "m", "2", {}, json.dumps(shadow), role="shadow"),
        ]

    log = PredictionLog.open(log_uri)
    log.write(
        rows("a", {"predicted": ["Ak"], "labels": []}, {"predicted": ["Ak"], "labels": []})
        + rows("b", {"predicted": ["Ak"]}, {"predicted": ["Nazli"]})
        + rows("c", {"predicted": ["x", "y"]}, {"predicted": ["y", "x"]})
    )
    labels = compare(log, "m", StubRecipe())
    assert (labels.rule, labels.agreeing, labels.compared) == ("label", 2, 3)
    assert labels.median_relative_difference is None
    assert (labels.primary_versions, labels.shadow_versions) == (["1"], ["2"])
    assert log.shadow_count("m", "2") == 3 and log.shadow_count("m", "1") == 0

    class TextRecipe(StubRecipe):
        feedback_type = None

    log.write(
        rows("t1", {"translation": "hi"}, {"translation": "hi"})
        + rows("t2", {"translation": "hi"}, {"translation": "hello"})
    )
    text = compare(log, "m", TextRecipe(), last=2)
    assert (text.rule, text.agreeing, text.compared) == ("identical", 1, 2)
    assert compare(log, "nothing", StubRecipe()).compared == 0


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")
