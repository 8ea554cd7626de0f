"""The stack's MLflow tracking server: runs and registry in PostgreSQL, artifacts in S3.

Artifacts are *proxied* (``--serve-artifacts --artifacts-destination s3://BUCKET/mlflow``):
clients upload and download through the tracking server, so a user needs only the tracking
URI; the S3 credentials stay with the server. ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``
because MLflow 3 otherwise starts a job runner (Huey consumers): seven processes and about
2.4 GB for a feature opsline does not use.
"""

from __future__ import annotations

import sys
from pathlib import Path

from opsline.stack import processes
from opsline.stack.settings import StackSettings


def service(settings: StackSettings, key: str = "mlflow") -> processes.Service:
    return processes.Service("MLflow tracking server", key, settings.dir)


def server_env(settings: StackSettings, secret_key: str | None = None) -> dict[str, str]:
    return {
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": settings.access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key or settings.secret_key,
        "AWS_DEFAULT_REGION": settings.region,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def start(
    settings: StackSettings,
    *,
    port: int | None = None,
    key: str = "mlflow",
    secret_key: str | None = None,
) -> int:
    """Start the server (``port``/``key``/``secret_key`` let a test start a second, broken one)."""
    beside = Path(sys.executable).parent / "mlflow"
    program = [str(beside)] if beside.is_file() else [sys.executable, "-m", "mlflow"]
    cmd = [
        *program,
        "server",
        "--host",
        settings.host,
        "--port",
        str(port or settings.mlflow_port),
        "--workers",
        str(settings.mlflow_workers),
        "--backend-store-uri",
        settings.pg_uri(settings.mlflow_db),
        "--serve-artifacts",
        "--artifacts-destination",
        settings.artifacts_destination,
    ]
    root = settings.dir / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return processes.start(
        service(settings, key), cmd, env=server_env(settings, secret_key), cwd=root
    )


def healthy(settings: StackSettings, port: int | None = None) -> bool:
    import urllib.error
    import urllib.request

    url = f"http://{settings.client_host}:{port or settings.mlflow_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
