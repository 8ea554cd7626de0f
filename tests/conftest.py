"""Shared fixtures. Every test gets its own empty workspace unless it asks for a trained one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Gradio and MLflow must not phone home from tests (the CI machine has no internet).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


# What `make check` (the edit loop, ~3 min) leaves to `make test` and CI: modules that start
# a server stack, several processes or real training jobs, or spend a fuzzing budget. Listed
# in one place so the edit loop's budget is visible; CI still runs every one of them.
SLOW_MODULES = {
    "tests/scale": "PostgreSQL + SeaweedFS + MLflow servers",
    "tests/training/test_ddp.py": "two-process DDP training, torchrun",
    "tests/test_dvc.py": "dvc repro of the whole pipeline, several times",
    "tests/serving/test_fuzz.py": "schemathesis budget over four live recipe servers",
    "tests/sweeps/test_sweep.py": "Optuna sweeps training several models, two workers",
    "tests/serving/test_closed_loop.py": "a server that retrains itself through a job",
    "tests/serving/test_jobs_api.py": "training jobs started over HTTP",
    "tests/jobs/test_worker_kill.py": "a job worker killed mid-training",
    "tests/serving/test_prediction_log_crash.py": "a server killed mid-traffic, restarted",
    "tests/loadtest/test_loadtest.py": "Locust runs against a live server",
    "tests/serving/test_json_logs.py": "server subprocesses",
    "tests/recipes/image_classification/test_onnx_export.py": "MobileNet ONNX exports",
    "tests/cli/test_commands.py": "one opsline subprocess per test",
    "tests/cli/test_monitor.py": "one opsline subprocess per test, a retrain",
    "tests/test_contract.py": "every recipe through the whole path",
    "tests/monitoring/test_prometheus.py": "a real Prometheus scraping a live server",
    "tests/deploy/test_docker_run.py": "the images' entrypoints as subprocesses",
    "tests/test_workflows.py::test_release_check": "serves and load-tests, twice",
    "tests/test_workflows.py::test_pre_commit": "every hook over a fresh clone",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).resolve().parent.parent
    for item in items:
        where = f"{item.path.relative_to(root).as_posix()}::{item.name}"
        if any(where.startswith(prefix) for prefix in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty workspace per test, so no test sees another's runs or models."""
    home = tmp_path / "opsline-home"
    monkeypatch.setenv("OPSLINE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def _trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real workspace for the session: data prepared, a GBM trained, registered, promoted."""
    from opsline import pipeline

    home = tmp_path_factory.mktemp("trained-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        _, decision = pipeline.run("house_price", ["model=gbm"])
    assert decision.promoted, decision.reason
    return home


@pytest.fixture(scope="session")
def _prepared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from opsline import pipeline

    home = tmp_path_factory.mktemp("sweep-data-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        pipeline.prepare("house_price")
    return home / "data"


@pytest.fixture
def prepared_home(isolated_home: Path, _prepared_data: Path) -> Path:
    """This test's empty workspace plus a copy of the prepared house_price dataset (prepared
    once per session: sweeps and multi-process training start from data, not a model)."""
    shutil.copytree(_prepared_data, isolated_home / "data")
    return isolated_home


@pytest.fixture
def trained_workspace(_trained_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point OPSLINE_HOME at the session's trained workspace (read it, don't retrain); the
    prediction log is the test's own, so no test sees another's predictions."""
    monkeypatch.setenv("OPSLINE_HOME", str(_trained_home))
    monkeypatch.setenv("OPSLINE_PREDICTION_LOG_URI", f"sqlite:///{tmp_path / 'predictions.db'}")
    return _trained_home


CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """The system's headless Chromium under Playwright (never `playwright install`)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no system Chromium at {CHROMIUM} (`make system-deps` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
