"""``/jobs`` over HTTP with real worker processes, a real SQLite job table and MLflow registry.

One workspace is shared by the module (the data is prepared once, by the first training
job); the jobs in it run one at a time (``max_jobs=1``). Every test kills whatever worker it
leaves behind, so no training outlives the test that started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from opsline.jobs.manager import RESTART_REASON, worker_alive
from opsline.jobs.store import JobStore
from opsline.serving.app import create_app
from opsline.serving.auth import DISABLED
from opsline.serving.settings import ServingSettings

from .conftest import stub_client

KEY = "s3cret-test-key"
AUTH = {"X-API-Key": KEY}
GBM = {"recipe": "house_price", "overrides": ["model=gbm"]}
# An MLP that would train for a long time: it is cancelled or killed long before the end.
LONG_MLP = {
    "recipe": "house_price",
    "overrides": ["model=mlp", "model.patience=1000", "trainer.max_epochs=1000"],
}


def jobs_client(**settings: Any) -> TestClient:
    settings.setdefault("api_key", KEY)
    return TestClient(
        create_app(ServingSettings(ui=False, **settings)), raise_server_exceptions=False
    )


def wait_for(
    get: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float = 300
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = get()
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last state: {job}")
        time.sleep(0.3)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] not in ("queued", "running")


def kill_workers(home: Path) -> None:
    """Stop what a test left running, so the next one finds a free job slot."""
    store = JobStore(home)
    for job in store.active():
        if worker_alive(job.pid, job.id):
            os.killpg(job.pid, signal.SIGKILL)
        store.finish(job.id, "failed", error="killed by the test teardown")


@pytest.fixture(scope="module")
def jobs_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("jobs-home")
    yield home
    kill_workers(home)


@pytest.fixture
def home(jobs_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("OPSLINE_HOME", str(jobs_home))
    yield jobs_home
    kill_workers(jobs_home)


@pytest.fixture(scope="module")
def trained_job(jobs_home: Path) -> dict[str, Any]:
    """A GBM trained through ``POST /jobs/train`` in the module workspace (fresh: no data)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(jobs_home))
        with jobs_client() as client:
            started = time.monotonic()
            response = client.post("/jobs/train", json=GBM, headers=AUTH)
            answered_in = time.monotonic() - started
            job = response.json()
            right_after = client.get(f"/jobs/{job['id']}", headers=AUTH).json()
            second = client.post("/jobs/train", json=GBM, headers=AUTH)
            final = wait_for(
                lambda: client.get(f"/jobs/{job['id']}", headers=AUTH).json(), finished
            )
    return {
        "response": response,
        "answered_in": answered_in,
        "right_after": right_after,
        "second": second,
        "final": final,
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One keyed app over an empty workspace for the fast checks (no job is ever started)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(tmp_path_factory.mktemp("jobs-api")))
        with jobs_client() as client:
            yield client


# -- access (over the stand-in recipe's app: it starts in no time) ------------------------
def test_job_endpoints_are_refused_without_a_configured_key(stub_model_dir: Path) -> None:
    with stub_client(str(stub_model_dir), api_key=None) as client:
        for method, path in [
            ("post", "/jobs/train"),
            ("post", "/jobs/evaluate"),
            ("get", "/jobs"),
            ("get", "/jobs/x"),
            ("delete", "/jobs/x"),
        ]:
            r = client.request(method, path, json=GBM, headers=AUTH)
            assert r.status_code == 503 and r.json()["detail"] == DISABLED, (path, r.text)
    assert JobStore(Path(os.environ["OPSLINE_HOME"])).search() == []


def test_missing_or_wrong_key_is_401(stub_model_dir: Path) -> None:
    with stub_client(str(stub_model_dir), api_key=KEY) as client:
        for headers in [
            {},
            {"X-API-Key": "wrong"},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {KEY}"},
        ]:
            r = client.post("/jobs/train", json=GBM, headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == "Bearer"
        assert client.get("/jobs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert client.get("/jobs", headers=AUTH).json() == {"items": []}
        # The rest of the API stays open.
        assert client.get("/health").status_code == 200


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, body, loc, words",
    [
        (
            "/jobs/train",
            {"overrides": ["model=nope"]},
            ["body", "overrides", 0],
            ["model", "'nope'", "Valid models: gbm, mlp"],
        ),
        (
            "/jobs/train",
            {"overrides": ["model=gbm", "no_such.key=1"]},
            ["body", "overrides", 1],
            ["no_such.key"],
        ),
        (
            "/jobs/evaluate",
            {"overrides": ["experiment=nope"]},
            ["body", "overrides", 0],
            ["experiment", "Valid experiments:"],
        ),
        ("/jobs/train", {"overrides": ["model"]}, ["body", "overrides", 0], ["key=value"]),
        ("/jobs/train", {"overrides": ["a=1"] * 51}, ["body", "overrides"], ["at most 50"]),
        ("/jobs/train", {"recipe": "nope"}, ["body", "recipe"], ["Unknown recipe", "house_price"]),
        ("/jobs/train", {"model": "models:/house_price/1"}, ["body", "model"], ["Extra"]),
    ],
)
def test_bad_requests_are_422_naming_the_field(
    api: TestClient, path: str, body: dict, loc: list, words: list[str]
) -> None:
    r = api.post(path, json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == loc
    assert all(word in error["msg"] for word in words), error["msg"]
    assert api.get("/jobs", headers=AUTH).json() == {"items": []}


def test_unknown_job_is_404(api: TestClient) -> None:
    assert api.get("/jobs/nope", headers=AUTH).status_code == 404
    r = api.delete("/jobs/nope", headers=AUTH)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert api.get("/jobs?status=bogus", headers=AUTH).status_code == 422


# -- the real path -----------------------------------------------------------------------
def test_train_job_answers_at_once_then_registers_a_version(
    trained_job: dict[str, Any], home: Path
) -> None:
    from opsline.tracking.runs import client as mlflow_client

    response = trained_job["response"]
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['id']}"
    # Answered before the work was done: the job was still queued or running.
    assert job["status"] == "queued" and trained_job["right_after"]["status"] in (
        "queued",
        "running",
    )
    assert trained_job["answered_in"] < 10
    # One job at a time (OPSLINE_MAX_JOBS=1): the second request was refused, not queued.
    assert trained_job["second"].status_code == 429
    assert "OPSLINE_MAX_JOBS" in trained_job["second"].json()["detail"]

    final = trained_job["final"]
    assert final["status"] == "succeeded", final
    assert final["progress"] == 1.0 and final["started_at"] and final["finished_at"]
    assert 0 < final["metrics"]["test_rmsle"] < 0.2
    version = final["model_version"]
    assert final["model_name"] == "house_price"
    registered = mlflow_client().get_model_version("house_price", version)
    assert registered.run_id and registered.tags["kind"] == "gbm"
    assert any(f"Registered house_price version {version}" in line for line in final["log_tail"])
    assert final["history"] and all("val_rmsle" in h for h in final["history"])
    with jobs_client() as client:
        assert client.delete(f"/jobs/{job['id']}", headers=AUTH).status_code == 409
        listed = client.get("/jobs?status=succeeded", headers=AUTH).json()["items"]
        assert job["id"] in [j["id"] for j in listed]


def test_evaluate_job_reports_the_production_model_metrics(
    trained_job: dict[str, Any], home: Path
) -> None:
    from opsline import pipeline

    version = trained_job["final"]["model_version"]
    pipeline.promote("house_price", version, force=True)
    with jobs_client() as client:
        r = client.post("/jobs/evaluate", json={}, headers=AUTH)  # recipe: the served one
        assert r.status_code == 202, r.text
        job = wait_for(lambda: client.get(f"/jobs/{r.json()['id']}", headers=AUTH).json(), finished)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "evaluate" and job["model_version"] == version
    assert job["model_name"] == "house_price"
    # The same model on the same test split gives the metric recorded at training.
    assert job["metrics"]["rmsle"] == pytest.approx(trained_job["final"]["metrics"]["test_rmsle"])


def test_cancel_stops_a_running_mlp(trained_job: dict[str, Any], home: Path) -> None:
    with jobs_client() as client:
        r = client.post("/jobs/train", json=LONG_MLP, headers=AUTH)
        assert r.status_code == 202, r.text
        url = f"/jobs/{r.json()['id']}"
        running = wait_for(
            lambda: client.get(url, headers=AUTH).json(),
            lambda j: finished(j) or bool(j["history"]),
        )
        assert running["status"] == "running" and running["message"].startswith("training")
        assert 0.1 <= running["progress"] < 0.85 and "val_loss" in running["history"][0]
        cancelled = client.delete(url, headers=AUTH)
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
        pid = running["pid"]
        wait_for(lambda: {"alive": worker_alive(pid)}, lambda s: not s["alive"], timeout=30)
        job = client.get(url, headers=AUTH).json()
        assert job["status"] == "cancelled" and job["finished_at"]
        assert client.delete(url, headers=AUTH).status_code == 409
        # The slot is free again.
        assert client.get("/jobs?status=running", headers=AUTH).json() == {"items": []}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_job_history_survives_a_server_crash(
    trained_job: dict[str, Any], home: Path, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "OPSLINE_HOME": str(home),
        "OPSLINE_API_KEY": KEY,
        "OPSLINE_UI": "false",
        "OPSLINE_LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "opsline.serving.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: {"up": _answers(base)}, lambda s: s["up"], timeout=90)
        r = httpx.post(f"{base}/jobs/train", json=LONG_MLP, headers=AUTH, timeout=30)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        running = wait_for(
            lambda: httpx.get(f"{base}/jobs/{job_id}", headers=AUTH, timeout=30).json(),
            lambda j: j["status"] == "running" or finished(j),
        )
        assert running["status"] == "running"
        # The crash: the server dies at once, and its worker with it.
        server.kill()
        server.wait(timeout=30)
        os.killpg(running["pid"], signal.SIGKILL)
    finally:
        if server.poll() is None:
            server.kill()
    with jobs_client() as client:  # the restarted server
        jobs = {j["id"]: j for j in client.get("/jobs", headers=AUTH).json()["items"]}
        assert jobs[job_id]["status"] == "failed"
        assert jobs[job_id]["error"] == RESTART_REASON
        assert jobs[trained_job["final"]["id"]]["status"] == "succeeded"
        assert (
            jobs[trained_job["final"]["id"]]["model_version"]
            == trained_job["final"]["model_version"]
        )
        # The failed job no longer holds the only slot.
        assert client.get("/jobs?status=running", headers=AUTH).json() == {"items": []}


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_image_classification_job_on_grapevine(home: Path) -> None:
    from opsline.recipes.registry import list_recipes
    from opsline.tracking.runs import client as mlflow_client

    if "image_classification" not in list_recipes():
        pytest.skip(
            "the image_classification recipe is not registered yet (being written "
            "in src/opsline/recipes/image_classification/)"
        )
    with jobs_client() as client:
        r = client.post(
            "/jobs/train",
            headers=AUTH,
            json={
                "recipe": "image_classification",
                # The recipe's smoke size: small CNN, 32 px, one epoch (the path, not quality).
                "overrides": [
                    "data=grapevine",
                    "trainer=debug",
                    "model=small_cnn",
                    "trainer.max_epochs=1",
                    "model.image_size=32",
                ],
            },
        )
        assert r.status_code == 202, r.text
        job = wait_for(
            lambda: client.get(f"/jobs/{r.json()['id']}", headers=AUTH).json(),
            finished,
            timeout=900,
        )
    assert job["status"] == "succeeded", job
    assert job["model_name"] == "grapevine" and job["metrics"]
    assert mlflow_client().get_model_version("grapevine", job["model_version"]).run_id
