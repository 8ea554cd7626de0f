"""The closed loop, end to end, on a live server: serve house_price; reference-like traffic
is no drift; drifted traffic (living areas ×1.8, 40 years older) is drift in ``/drift`` and
the gauge; feedback arrives; the retrain policy starts a job (prepare with the feedback rows
→ train → gate); the gate promotes; the server serves the new version without a restart —
and a client sending requests all along never saw one fail.

Real components throughout: the trained workspace is this test's own (the loop writes to
the registry), the retrain is the job system's worker process, the log is SQLite.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsline.recipes.house_price.traffic import PRICE_RISE, drifted, movable, split_requests

KEY = "test-key"


def wait_for(what: str, probe: Any, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


class Client(threading.Thread):
    """Sends one drifted /predict after another until stopped; keeps every failure."""

    def __init__(self, url: str, houses: list[dict[str, Any]]):
        super().__init__(daemon=True)
        self.url, self.houses = url, houses
        self.stop, self.sent, self.failures = threading.Event(), 0, []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                house = self.houses[self.sent % len(self.houses)]
                try:
                    response = http.post(
                        "/predict", json=house, headers={"X-Request-ID": f"bg-{self.sent}"}
                    )
                    if response.status_code != 200:
                        self.failures.append((response.status_code, response.text[:200]))
                except httpx.HTTPError as error:
                    self.failures.append(("transport", repr(error)))
                self.sent += 1
                time.sleep(0.05)


def test_drift_feedback_retrain_gate_and_reload_without_a_failed_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsline import pipeline
    from opsline.monitoring.prediction_log import PredictionLog
    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings
    from opsline.tracking.runs import client as mlflow_client
    from tests.serving.conftest import live_server

    _, first = pipeline.run("house_price", ["model=gbm"])  # this test's own registry: v1
    assert first.promoted and first.version == "1"
    log_uri = f"sqlite:///{tmp_path / 'predictions.db'}"
    # The environment, not only the settings: the retrain worker reads the same log.
    monkeypatch.setenv("OPSLINE_PREDICTION_LOG_URI", log_uri)
    policy = tmp_path / "policy.yaml"
    # A cooldown: the market stays moved, and one retrain is what this test follows.
    policy.write_text(
        "drift: {consecutive_checks: 2}\ncooldown_minutes: 30\n"
        "max_failures: 1\ntrain_overrides: [model=gbm]\n"
    )
    settings = ServingSettings(
        recipe="house_price",
        ui=False,
        api_key=KEY,
        drift_interval_s=1.0,
        drift_window="200",
        drift_min_rows=100,
        reload_interval_s=0,
        retrain_policy=str(policy),
    )
    test_rows = split_requests("test")
    assert len(test_rows) > 300

    with live_server(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        # 1. Reference-like traffic: a verdict, and it is "no drift".
        for i, (house, _) in enumerate(test_rows[:150]):
            assert (
                http.post("/predict", json=house, headers={"X-Request-ID": f"ref-{i}"}).status_code
                == 200
            )
        calm = http.get("/drift", params={"refresh": "true"}).json()
        assert calm["status"] == "no_drift", calm
        assert calm["rows"] == 150 and len(calm["features"]) >= 20

        # 2. The market moves: a client keeps sending larger, older houses throughout.
        moving = [(h, price) for h, price in test_rows[150:] if movable(h)]
        assert len(moving) >= 250
        background = Client(url, [drifted(h) for h, _ in moving])
        background.start()
        try:
            batch = moving[:250]
            answered = http.post(
                "/predict/batch",
                json={"items": [drifted(h) for h, _ in batch]},
                headers={"X-Request-ID": "moved"},
            )
            assert answered.status_code == 200
            # 3. Their sale prices come back: 60 % above what they sold for before.
            feedback = http.post(
                "/feedback",
                headers={"X-API-Key": KEY},
                json=[
                    {"request_id": f"moved/{i}", "actual": price * PRICE_RISE}
                    for i, (_, price) in enumerate(batch)
                ],
            )
            assert feedback.status_code == 200, feedback.text

            drift = wait_for(
                "drift in GET /drift",
                lambda: d if (d := http.get("/drift").json())["status"] == "drift" else None,
                60,
            )
            assert "gr_liv_area" in drift["drifted_features"]
            assert "year_built" in drift["drifted_features"]
            metrics = http.get("/metrics").text
            assert "opsline_drift_detected 1.0" in metrics
            assert 'opsline_feature_drift_score{feature="gr_liv_area"}' in metrics

            # 4. The policy retrains; the gate decides; the server reloads by itself.
            def promoted() -> dict[str, Any] | None:
                model = http.get("/model").json()
                actions = model["monitoring"]["loop"]["actions"]
                if actions and actions[0]["outcome"] in ("failed", "not_promoted"):
                    pytest.fail(f"the retrain did not promote: {actions[0]}")
                return model if model["version"] == "2" else None

            wait_for("version 2 to be served", promoted, 300, every=1)
            time.sleep(1.0)  # the client's requests reach the new version too

            # The worker closes its action record right after the gate moves the alias;
            # the loop sees the job end on its next tick.
            def settled() -> dict[str, Any] | None:
                model = http.get("/model").json()
                loop = model["monitoring"]["loop"]
                job_id = loop["actions"][0]["job_id"]
                job = http.get(f"/jobs/{job_id}", headers={"X-API-Key": KEY}).json()
                return (
                    model
                    if (
                        loop["actions"][0]["outcome"] != "running"
                        and loop["state"]["running_job"] is None
                        and job["status"] != "running"
                    )
                    else None
                )

            model = wait_for("the retrain's records to close", settled, 60)
        finally:
            background.stop.set()
            background.join(timeout=30)

        assert background.failures == [], background.failures[:5]
        assert background.sent > 20
        loop = model["monitoring"]["loop"]
        action = loop["actions"][0]
        assert (action["trigger"], action["decision"], action["outcome"]) == (
            "drift",
            "retrain",
            "promoted",
        )
        assert (action["old_version"], action["new_version"]) == ("1", "2")
        assert action["reason"].startswith("drift detected on 2 consecutive checks")
        assert action["result"].startswith("test_rmsle ")  # the gate's comparison
        job = http.get(f"/jobs/{action['job_id']}", headers={"X-API-Key": KEY}).json()
        assert (job["kind"], job["status"]) == ("retrain", "succeeded")
        assert loop["state"]["running_job"] is None and loop["state"]["failures"] == 0

    # The trail in the registry: trigger, job and the gate's verdict on the new version,
    # trained on different data (the feedback rows) than the version it replaced.
    tags = mlflow_client().get_model_version("house_price", "2").tags
    assert tags["retrain.trigger"] == "drift" and tags["retrain.job_id"] == action["job_id"]
    assert tags["retrain.gate"].startswith("promoted: ")
    assert (
        tags["data_version"]
        != mlflow_client().get_model_version("house_price", "1").tags["data_version"]
    )
    # Both versions answered the background client: the swap happened while it ran.
    log = PredictionLog.open(log_uri)
    try:
        frame = log.frame("house_price")
    finally:
        log.close()
    versions = set(frame.loc[frame.request_id.str.startswith("bg-"), "version"])
    assert versions == {"1", "2"}
