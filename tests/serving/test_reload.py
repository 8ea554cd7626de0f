"""Hot reload: the server follows the registry alias; bad candidates never serve."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from opsline import pipeline
from opsline.export.card import MODEL_CARD_FILE
from opsline.recipes.registry import get_recipe
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings
from opsline.tracking import registry

from .conftest import live_server
from .test_app import metric

KEY = "reload-test-key"
AUTH = {"X-API-Key": KEY}


@pytest.fixture
def versions(
    _trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A copy of the trained workspace (version 1 in production) plus three candidates:
    ``good`` (the same files, a new version), ``broken`` (corrupt weights) and
    ``mismatched`` (a model card from another recipe)."""
    home = tmp_path / "home"
    shutil.copytree(_trained_home, home)
    monkeypatch.setenv("OPSLINE_HOME", str(home))
    production = registry.resolve_model("house_price")
    made: dict[str, str] = {"production": str(production.version)}
    for name in ("good", "broken", "mismatched"):
        model_dir = tmp_path / name / "model"
        shutil.copytree(production.local_dir, model_dir)
        if name == "broken":  # both backends' weights, so neither can serve it
            (model_dir / "model.txt").write_text("not a LightGBM model\n")
            (model_dir / "model.onnx").unlink(missing_ok=True)
        if name == "mismatched":
            card = json.loads((model_dir / MODEL_CARD_FILE).read_text())
            (model_dir / MODEL_CARD_FILE).write_text(json.dumps({**card, "recipe": "translation"}))
        made[name] = registry.register(
            "house_price",
            production.run_id,
            str(model_dir),
            tags={"kind": "gbm"},
            metrics=production.metrics,
        )
    return made


def _client(**settings: Any) -> TestClient:
    settings.setdefault("reload_interval_s", 0)
    app = create_app(ServingSettings(ui=False, api_key=KEY, **settings))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def sample() -> dict[str, Any]:
    return get_recipe("house_price").sample_requests()[0].model_dump(mode="json")


def test_admin_reload_swaps_in_the_promoted_version(versions, sample) -> None:
    with _client() as client:
        assert client.get("/model").json()["version"] == versions["production"]
        pipeline.promote("house_price", versions["good"], force=True)
        assert client.post("/admin/reload").status_code == 401  # the key is required
        reply = client.post("/admin/reload", headers=AUTH)
        assert reply.status_code == 200, reply.text
        assert reply.json()["outcome"] == "swapped"
        assert reply.json()["previous"] == versions["production"]
        info = client.get("/model").json()
        assert info["version"] == versions["good"]
        assert info["reload"]["attempts"][0]["outcome"] == "swapped"
        assert client.post("/predict", json=sample).status_code == 200
        again = client.post("/admin/reload", headers=AUTH).json()
        assert again["outcome"] == "unchanged"
        assert metric(client, "opsline_model_reloads_total", outcome="swapped") == 1
        assert (
            metric(
                client,
                "opsline_model_info",
                name="house_price",
                version=versions["good"],
                alias="production",
                kind="gbm",
            )
            == 1
        )


@pytest.mark.parametrize(
    ("candidate", "why"), [("broken", "LightGBM"), ("mismatched", "translation")]
)
def test_a_bad_version_is_refused_and_the_old_one_keeps_serving(
    versions, sample, candidate, why
) -> None:
    with _client() as client:
        before = client.post("/predict", json=sample).json()
        pipeline.promote("house_price", versions[candidate], force=True)
        reply = client.post("/admin/reload", headers=AUTH)
        assert reply.status_code == 409
        assert reply.json()["outcome"] == "failed" and why in reply.json()["reason"]
        info = client.get("/model").json()
        assert info["version"] == versions["production"]
        assert info["reload"]["attempts"][0]["version"] == versions[candidate]
        assert why in info["reload"]["attempts"][0]["reason"]
        assert client.post("/predict", json=sample).json() == before
        assert metric(client, "opsline_model_reloads_total", outcome="failed") == 1


def test_the_server_polls_its_alias(versions) -> None:
    with _client(reload_interval_s=0.2) as client:
        pipeline.promote("house_price", versions["good"], force=True)
        deadline = time.monotonic() + 20
        while client.get("/model").json()["version"] != versions["good"]:
            assert time.monotonic() < deadline, client.get("/model").json()["reload"]
            time.sleep(0.1)
        attempt = client.get("/model").json()["reload"]["attempts"][0]
        assert attempt["trigger"] == "poll" and attempt["outcome"] == "swapped"


def test_reloads_under_load_fail_no_request(versions, sample) -> None:
    app = create_app(ServingSettings(ui=False, api_key=KEY, reload_interval_s=0))
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                statuses[http.post("/predict", json=sample).status_code] += 1

    with live_server(app) as url:
        workers = [threading.Thread(target=hammer, args=(url,)) for _ in range(8)]
        for worker in workers:
            worker.start()
        try:
            served = []
            for version in (versions["good"], versions["production"], versions["good"]):
                time.sleep(0.5)
                pipeline.promote("house_price", version, force=True)
                reply = httpx.post(f"{url}/admin/reload", headers=AUTH, timeout=60)
                assert reply.json()["outcome"] == "swapped", reply.text
                served.append(httpx.get(f"{url}/model").json()["version"])
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
    assert served == [versions["good"], versions["production"], versions["good"]]
    assert set(statuses) == {200}, statuses
    assert statuses[200] > 50
