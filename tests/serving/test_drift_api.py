"""Drift in the real server: house_price's promoted model, its registered reference, and a
prediction log filled with chosen requests.

The logged requests are what a client sending the four required facts (neighborhood,
living area, overall quality, year built) logs: the other monitored fields are ``None`` and
not tested, so shifting two of the four features is half of them — drift at Evidently's
default share.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from opsline.monitoring.prediction_log import LogRow, PredictionLog
from opsline.monitoring.reference import REFERENCE_FILE
from opsline.recipes.registry import get_recipe
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

REQUIRED = ["neighborhood", "gr_liv_area", "overall_qual", "year_built"]


def logged_features(rows: int, *, shifted: bool = False, seed: int = 11) -> list[dict[str, Any]]:
    """Monitored features of train-split houses sent with the required fields only; shifted:
    living areas ×1.8 and construction years 25 later."""
    from opsline.data.dataset import load_dataset
    from opsline.workspace import data_dir

    recipe = get_recipe("house_price")
    train = load_dataset(data_dir("house_price"), "house_price").frame("train")
    requests = recipe.requests_from_frame(train[REQUIRED].sample(rows, random_state=seed))
    features = recipe.monitored_features(requests, [None] * len(requests))
    if shifted:
        features = [
            {**f, "gr_liv_area": f["gr_liv_area"] * 1.8, "year_built": f["year_built"] + 25}
            for f in features
        ]
    return features


def fill_log(features: list[dict[str, Any]], version: str | None = "1") -> None:
    """Write rows as the server would have (the test's own log, see ``trained_workspace``)."""
    log = PredictionLog.open()
    now = time.time()
    try:
        log.write(
            [
                LogRow(
                    request_id=f"req-{i}",
                    ts=now - len(features) + i,
                    model="house_price",
                    version=version,
                    features=f,
                    prediction="{}",
                )
                for i, f in enumerate(features)
            ]
        )
    finally:
        log.close()


def metric_lines(client: TestClient, name: str) -> list[str]:
    return [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith((name + " ", name + "{"))
    ]


@pytest.fixture
def drift_client(trained_workspace: Path) -> Iterator[TestClient]:
    """The real app checking drift on demand only (interval 0), no UI."""
    with TestClient(
        create_app(ServingSettings(ui=False, drift_interval_s=0)), raise_server_exceptions=False
    ) as client:
        yield client


def test_the_reference_is_registered_with_the_model(drift_client: TestClient) -> None:
    model = drift_client.app.state.model.model
    reference = pd.read_parquet(Path(model.model_dir) / REFERENCE_FILE)
    # 1000 train rows (a few Ames rows the API refuses are left out), one column per field.
    assert 990 <= len(reference) <= 1000
    assert list(reference.columns) == list(get_recipe("house_price").Request.model_fields)
    assert reference["gr_liv_area"].dtype == "float64"
    assert reference["neighborhood"].map(type).eq(str).all()


def test_an_empty_log_is_not_enough_data(drift_client: TestClient) -> None:
    body = drift_client.get("/drift").json()
    assert body["status"] == "not_enough_data"
    assert body["message"] == "not enough data (0 of 100 requests)"
    assert body["share"] is None and body["features"] == [] and not body["has_report"]
    assert body["drift_share"] is None  # the automatic rule needs the features it tests
    # No verdict: the verdict series are absent (the alert neither fires nor resolves).
    assert metric_lines(drift_client, "opsline_drift_window_rows") == [
        "opsline_drift_window_rows 0.0"
    ]
    assert metric_lines(drift_client, "opsline_drift_detected") == []
    report = drift_client.get("/drift/report")
    assert report.status_code == 409
    assert report.json()["detail"] == "No drift report: not enough data (0 of 100 requests)."


def test_a_window_below_the_minimum_says_how_many(drift_client: TestClient) -> None:
    fill_log(logged_features(37))
    body = drift_client.get("/drift", params={"refresh": "true"}).json()
    assert (body["status"], body["rows"]) == ("not_enough_data", 37)
    assert body["message"] == "not enough data (37 of 100 requests)"


def test_reference_like_requests_are_no_drift(drift_client: TestClient) -> None:
    fill_log(logged_features(300))
    body = drift_client.get("/drift", params={"refresh": "true"}).json()
    assert body["status"] == "no_drift", body["message"]
    assert body["detected"] is False and body["rows"] == 300
    assert body["window"] == "last 1000 requests" and body["model"] == "house_price"
    assert {f["name"] for f in body["features"]} == set(REQUIRED)
    assert "gr_liv_area" not in body["drifted_features"]
    assert "year_built" not in body["drifted_features"]
    assert len(body["skipped"]) == len(get_recipe("house_price").Request.model_fields) - 4
    assert metric_lines(drift_client, "opsline_drift_detected") == ["opsline_drift_detected 0.0"]
    (share,) = metric_lines(drift_client, "opsline_drift_share")
    assert float(share.split()[1]) == pytest.approx(body["share"]) and body["share"] < 0.5
    scores = metric_lines(drift_client, "opsline_feature_drift_score")
    assert len(scores) == 4 and any('feature="gr_liv_area"' in line for line in scores)
    shown = drift_client.get("/model").json()["monitoring"]["drift"]  # GET /model too
    assert (shown["status"], shown["window"], shown["min_rows"]) == (
        "no_drift",
        "last 1000 requests",
        100,
    )


def test_shifted_requests_are_drift_with_a_report_logged_to_the_run(
    drift_client: TestClient,
) -> None:
    from opsline.tracking.runs import client as mlflow_client

    fill_log(logged_features(300, shifted=True))
    body = drift_client.get("/drift", params={"refresh": "true"}).json()
    assert body["status"] == "drift" and body["detected"] is True
    assert {"gr_liv_area", "year_built"} <= set(body["drifted_features"])
    assert body["share"] >= 0.5
    by_name = {f["name"]: f for f in body["features"]}
    assert by_name["gr_liv_area"]["method"] == "K-S p_value"
    assert by_name["gr_liv_area"]["score"] < by_name["gr_liv_area"]["threshold"]
    assert "opsline_drift_detected 1.0" in drift_client.get("/metrics").text
    assert any(
        line.startswith('opsline_feature_drifted{feature="gr_liv_area"} 1.0')
        for line in metric_lines(drift_client, "opsline_feature_drifted")
    )
    report = drift_client.get("/drift/report")
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text.lower() and "gr_liv_area" in report.text
    # The verdict changed (none -> drift): the reports went to the served version's run.
    run_id = drift_client.get("/model").json()["run_id"]
    assert body["logged_to"].startswith(f"runs:/{run_id}/drift/drift-")
    logged = {Path(a.path).name for a in mlflow_client().list_artifacts(run_id, "drift")}
    stem = Path(body["logged_to"]).name.removesuffix(".html")
    assert {f"{stem}.html", f"{stem}.json", f"{stem}.summary.json"} <= logged
    # Same verdict again: nothing new is logged.
    again = drift_client.get("/drift", params={"refresh": "true"}).json()
    assert again["status"] == "drift" and again["logged_to"] is None
    assert {Path(a.path).name for a in mlflow_client().list_artifacts(run_id, "drift")} == logged


def test_a_listener_hears_each_check(drift_client: TestClient) -> None:
    heard: list[str] = []
    drift_client.app.state.drift.listeners.append(lambda result: heard.append(result.status))
    drift_client.get("/drift", params={"refresh": "true"})
    fill_log(logged_features(150))
    drift_client.get("/drift", params={"refresh": "true"})
    assert heard == ["not_enough_data", "no_drift"]


@pytest.fixture
def old_model_home(
    trained_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A copy of the registry whose production version has no reference (as a version
    registered before drift detection)."""
    from opsline.tracking.registry import resolve_model

    ref = resolve_model("house_price")  # makes sure the version's files are in the cache
    home = tmp_path / "old-home"
    home.mkdir()
    shutil.copy(trained_workspace / "mlflow.db", home / "mlflow.db")
    shutil.copytree(trained_workspace / "models", home / "models")
    shutil.copytree(trained_workspace / "data", home / "data")
    (home / "models" / "house_price" / ref.version / "model" / REFERENCE_FILE).unlink()
    monkeypatch.setenv("OPSLINE_HOME", str(home))
    return home


def test_a_model_without_reference_says_retrain(old_model_home: Path) -> None:
    with TestClient(
        create_app(ServingSettings(ui=False, drift_interval_s=0)), raise_server_exceptions=False
    ) as client:
        version = client.get("/model").json()["version"]
        fill_log(logged_features(150))
        body = client.get("/drift").json()
        assert body["status"] == "no_reference"
        assert body["message"] == (
            f"model version {version} has no drift reference "
            "(registered before drift detection); retrain to add one"
        )
        assert client.get("/drift/report").status_code == 409
        assert metric_lines(client, "opsline_drift_share") == []


def test_without_a_model_drift_says_so(empty: TestClient) -> None:
    body = empty.get("/drift").json()
    assert body["status"] == "no_model"
    assert body["message"].startswith("no model is served: ")
    assert "opsline run house_price" in body["message"]


def test_the_drift_page_shows_the_verdict_table_and_report(trained_workspace: Path) -> None:
    from opsline.serving.drift_page import feature_frame, report_html, verdict_html

    fill_log(logged_features(300, shifted=True))
    with TestClient(
        create_app(ServingSettings(drift_interval_s=0)), raise_server_exceptions=False
    ) as client:
        assert client.get("/ui/drift").status_code == 200  # a page of the Gradio UI
        monitor = client.app.state.drift
        assert "No check yet" in verdict_html(monitor.latest)
        client.get("/drift")
        result = monitor.latest
    card = verdict_html(result)
    assert 'data-status="drift"' in card and "Data drift detected" in card
    assert "data drift: 2 of 4 features drifted" in card
    table = feature_frame(result)
    assert list(table.columns) == ["feature", "method", "score", "threshold", "drifted"]
    assert set(table.loc[table["drifted"] == "yes", "feature"]) >= {"gr_liv_area", "year_built"}
    assert f'<iframe src="/drift/report?t={result.checked_at:.3f}"' in report_html(result)


def test_the_monitor_rereads_the_reference_after_a_hot_reload(tmp_path: Path) -> None:
    """A swapped-in version brings its own reference (here: none), not the old one's."""
    from opsline.serving.drift_monitor import DriftMonitor
    from opsline.serving.runtime import LoadedModel, ModelSlot

    features = [
        {"area": 1000.0 + (i % 50) * 10, "city": "north" if i % 3 else "south"} for i in range(200)
    ]
    with_reference, without = tmp_path / "v1", tmp_path / "v2"
    with_reference.mkdir()
    without.mkdir()
    pd.DataFrame(features).to_parquet(with_reference / REFERENCE_FILE)
    log = PredictionLog.open()  # the test workspace's own log
    log.write(
        [
            LogRow(
                request_id=f"r{i}",
                ts=time.time(),
                model="m",
                version="1",
                features=f,
                prediction="{}",
            )
            for i, f in enumerate(features[:120])
        ]
    )
    log.close()
    slot = ModelSlot(
        model=LoadedModel(
            predictor=None,
            name="m",
            uri="models:/m@production",
            version="1",
            model_dir=with_reference,
        )
    )
    monitor = DriftMonitor(None, ServingSettings(drift_interval_s=0), slot)
    try:
        assert monitor.run_check().status == "no_drift"
        slot.model = LoadedModel(
            predictor=None, name="m", uri="models:/m@production", version="2", model_dir=without
        )
        result = monitor.run_check()
        assert result.status == "no_reference" and result.version == "2"
        assert result.message.startswith("model version 2 has no drift reference")
        assert monitor.latest is result
    finally:
        if monitor._log is not None:
            monitor._log.close()
