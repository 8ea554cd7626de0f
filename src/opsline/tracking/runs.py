"""Tracked runs: a thin handle over one MLflow run, used by the pipeline and recipes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from opsline.tracking import remote
from opsline.workspace import artifacts_dir, default_tracking_uri


def tracking_uri(configured: str | None = None) -> str:
    """The configured tracking URI, else ``$OPSLINE_TRACKING_URI`` (as the server reads it),
    else the embedded SQLite store in the workspace."""
    import os

    return configured or os.environ.get("OPSLINE_TRACKING_URI") or default_tracking_uri()


def client(uri: str | None = None) -> Any:
    """An ``MlflowClient`` for ``uri`` (embedded store by default).

    Raises:
        OpslineError: ``uri`` is a tracking server that does not answer.
    """
    import os

    # A per-file progress bar is noise in CLI output and server logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    resolved = tracking_uri(uri)
    if remote.is_server(resolved):
        remote.bound_retries()
        remote.ensure_reachable(resolved)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def git_commit() -> str:
    """Commit of the working directory, ``unknown`` outside git; ``+dirty`` if modified."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# MLflow's own tag that nests a run under another in the UI and in search results.
PARENT_RUN_TAG = "mlflow.parentRunId"


class RunStopped(Exception):
    """Raised on purpose to end a run early (e.g. a sweep pruning a trial).

    :func:`start_run` records such a run as KILLED (with the reason as a tag), not FAILED,
    so stopped runs and crashed runs stay distinguishable in MLflow.
    """


class TrainingRun(Protocol):
    """What a recipe may call on the run it trains in (``Recipe.train``'s ``run``).

    :class:`RunHandle` is one; the pipeline also passes a handle that taps per-epoch
    metrics for the job worker, and ranks other than 0 of a DDP run pass one that records
    nothing (:class:`opsline.training.distributed.NullRun`).
    """

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Numeric metrics; ``step`` (an epoch, a boosting round) for curves."""

    def log_text(self, text: str, artifact_file: str) -> None:
        """A text artifact (a profiler report, samples) at ``artifact_file``."""

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        """A JSON artifact at ``artifact_file``."""


class RunHandle:
    """One MLflow run. Recipes log through this, never through mlflow directly."""

    def __init__(self, mlflow_client: Any, run_id: str):
        self.client = mlflow_client
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log numeric metrics; non-finite values are skipped (MLflow rejects NaN)."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, step or 0)
            for key, value in metrics.items()
            if value is not None and math.isfinite(float(value))
        ]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(
            self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()]
        )

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
        return str(experiment.experiment_id)
    # Local artifact root only for the embedded store; a real server decides its own.
    location = artifacts_dir().as_uri() if mlflow_client.tracking_uri.startswith("sqlite") else None
    return str(mlflow_client.create_experiment(name, artifact_location=location))


@contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    uri: str | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
) -> Iterator[RunHandle]:
    """Open a run; it ends FINISHED on success, KILLED on :class:`RunStopped`, else FAILED.

    ``parent_run_id`` nests the run under another one (the ``mlflow.parentRunId`` tag),
    e.g. a sweep's trials under the sweep's run.
    """
    mlflow_client = client(uri)
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags[PARENT_RUN_TAG] = parent_run_id
    run = mlflow_client.create_run(
        _experiment_id(mlflow_client, experiment), run_name=run_name, tags=all_tags
    )
    handle = RunHandle(mlflow_client, run.info.run_id)
    with _ending(handle):
        # A wrong S3 credential or bucket fails here, not after training (run FAILED).
        remote.check_artifact_store(mlflow_client, run)
        yield handle


@contextmanager
def resume_run(run_id: str, uri: str | None = None) -> Iterator[RunHandle]:
    """Reopen an existing run (e.g. a resumed sweep's parent); it ends as :func:`start_run`."""
    mlflow_client = client(uri)
    mlflow_client.update_run(run_id, status="RUNNING")
    handle = RunHandle(mlflow_client, run_id)
    with _ending(handle):
        yield handle


def run_exists(run_id: str, uri: str | None = None) -> bool:
    """Whether ``run_id`` exists (and is not deleted) in the tracking store."""
    from mlflow.exceptions import MlflowException

    try:
        return bool(client(uri).get_run(run_id).info.lifecycle_stage == "active")
    except MlflowException:
        return False


@contextmanager
def _ending(handle: RunHandle) -> Iterator[None]:
    try:
        yield
    except RunStopped as stop:
        handle.client.set_tag(handle.run_id, "opsline.stopped", str(stop)[:5000])
        handle.client.set_terminated(handle.run_id, status="KILLED")
        raise
    except BaseException:
        handle.client.set_terminated(handle.run_id, status="FAILED")
        raise
    handle.client.set_terminated(handle.run_id, status="FINISHED")


def attach_to_model_version(
    name: str,
    version: str,
    local_dir: Path,
    artifact_path: str,
    tags: dict[str, Any],
    uri: str | None = None,
) -> str:
    """Log ``local_dir`` into the run behind model version ``name/version`` and tag the version.

    Used to attach reports measured against a served version (e.g. a load test) so each
    version carries them. Returns the run id the files went to.
    """
    mlflow_client = client(uri)
    model_version = mlflow_client.get_model_version(name, str(version))
    mlflow_client.log_artifacts(model_version.run_id, str(local_dir), artifact_path)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, str(version), key, str(value))
    return str(model_version.run_id)


def log_texts_to_run(
    run_id: str, files: dict[str, str], artifact_dir: str, uri: str | None = None
) -> None:
    """Write each ``{name: text}`` as ``artifact_dir/name`` into an existing run.

    The run may have finished long ago (e.g. drift reports logged to the run behind the
    served version); MLflow accepts artifacts on a finished run.
    """
    mlflow_client = client(uri)
    for name, text in files.items():
        mlflow_client.log_text(run_id, text, f"{artifact_dir.strip('/')}/{name}")


def end_runs(
    experiment: str, tags: dict[str, str], status: str = "KILLED", uri: str | None = None
) -> list[str]:
    """End the still-RUNNING runs of ``experiment`` that carry all ``tags``.

    For runs whose process died without ending them (e.g. a sweep worker killed mid-trial).
    Returns the ids of the runs ended.
    """
    mlflow_client = client(uri)
    experiment_entity = mlflow_client.get_experiment_by_name(experiment)
    if experiment_entity is None:
        return []
    clauses = [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
    clauses.append("attributes.status = 'RUNNING'")
    runs = mlflow_client.search_runs(
        [experiment_entity.experiment_id], filter_string=" and ".join(clauses)
    )
    for run in runs:
        mlflow_client.set_terminated(run.info.run_id, status=status)
    return [run.info.run_id for run in runs]
