"""Where a project's runs, data and models live: ``.opsline/`` unless ``OPSLINE_HOME`` says."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The workspace root (created on first use)."""
    root = Path(os.environ.get("OPSLINE_HOME") or Path.cwd() / ".opsline").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_dir(recipe: str) -> Path:
    """Where the prepared dataset of ``recipe`` is written."""
    return home() / "data" / recipe


def artifacts_dir() -> Path:
    """Default MLflow artifact root for the embedded store."""
    path = home() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tracking_uri() -> str:
    """Embedded MLflow store: SQLite in the workspace."""
    return f"sqlite:///{home() / 'mlflow.db'}"
