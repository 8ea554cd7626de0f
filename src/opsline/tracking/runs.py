"""Tracked runs: a thin handle over one MLflow run, used by the pipeline and recipes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opsline.workspace import artifacts_dir, default_tracking_uri


def tracking_uri(configured: str | None = None) -> str:
    """The configured tracking URI, or the embedded SQLite store in the workspace."""
    return configured or default_tracking_uri()


def client(uri: str | None = None):
    """An ``MlflowClient`` for ``uri`` (embedded store by default)."""
    import os

    # A per-file progress bar is noise in CLI output and server logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(uri), registry_uri=tracking_uri(uri))


def git_commit() -> str:
    """Commit of the working directory, ``unknown`` outside git; ``+dirty`` if modified."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class RunHandle:
    """One MLflow run. Recipes log through this, never through mlflow directly."""

    def __init__(self, mlflow_client: Any, run_id: str):
        self.client = mlflow_client
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log numeric metrics; non-finite values are skipped (MLflow rejects NaN)."""
        import math

        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()
                 if value is not None and math.isfinite(float(value))]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000])
                                                   for k, v in params.items()])

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(data, indent=2, default=str), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def artifact_uri(self, artifact_path: str) -> str:
        run = self.client.get_run(self.run_id)
        return f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"


def _experiment_id(mlflow_client: Any, name: str) -> str:
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # Local artifact root only for the embedded store; a real server decides its own.
    location = artifacts_dir().as_uri() if mlflow_client.tracking_uri.startswith("sqlite") else None
    return mlflow_client.create_experiment(name, artifact_location=location)


@contextmanager
def start_run(experiment: str, run_name: str | None = None, uri: str | None = None,
              tags: dict[str, str] | None = None) -> Iterator[RunHandle]:
    """Open a run; it ends FINISHED on success and FAILED if the body raises."""
    mlflow_client = client(uri)
    run = mlflow_client.create_run(_experiment_id(mlflow_client, experiment),
                                   run_name=run_name, tags=tags or {})
    handle = RunHandle(mlflow_client, run.info.run_id)
    try:
        yield handle
    except BaseException:
        mlflow_client.set_terminated(handle.run_id, status="FAILED")
        raise
    mlflow_client.set_terminated(handle.run_id, status="FINISHED")
