"""The stack's one config: ports, data directory and credentials (``configs/stack.yaml``).

``load_settings(path)`` reads ``path``, else ``$OPSLINE_STACK_CONFIG``, else the project's
``configs/stack.yaml``; the URIs every client needs are derived here, in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsline.errors import UsageError


@dataclass(frozen=True)
class Database:
    database: str
    user: str
    password: str


@dataclass(frozen=True)
class StackSettings:
    host: str
    dir: Path
    pg_port: int
    pg_superuser_password: str
    pg_os_user: str
    mlflow_db: Database
    opsline_db: Database
    s3_port: int
    access_key: str
    secret_key: str
    region: str
    bucket: str
    internal_ports: dict[str, int] = field(default_factory=dict)
    mlflow_port: int = 5000
    mlflow_workers: int = 1
    source: Path | None = None

    # The address clients use: a wildcard bind is reached through loopback on this machine.
    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    def pg_uri(self, db: Database) -> str:
        return (
            f"postgresql+psycopg2://{db.user}:{db.password}@{self.client_host}:"
            f"{self.pg_port}/{db.database}"
        )

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.client_host}:{self.s3_port}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.client_host}:{self.mlflow_port}"

    @property
    def artifacts_destination(self) -> str:
        return f"s3://{self.bucket}/mlflow"

    def ports(self) -> dict[str, int]:
        """Every port the stack listens on, named for error messages."""
        named = {
            "PostgreSQL (postgres.port)": self.pg_port,
            "S3 API (s3.port)": self.s3_port,
            "MLflow (mlflow.port)": self.mlflow_port,
        }
        named.update(
            {f"SeaweedFS {k} (s3.internal_ports.{k})": v for k, v in self.internal_ports.items()}
        )
        return named

    def client_env(self) -> dict[str, str]:
        """What a user exports to point opsline, MLflow, boto3 and DVC at this stack."""
        return {
            "OPSLINE_TRACKING_URI": self.tracking_uri,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "OPSLINE_PREDICTION_LOG_URI": self.pg_uri(self.opsline_db),
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }


_INTERNAL = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")


def default_path() -> Path:
    from opsline.config import config_dir

    return config_dir() / "stack.yaml"


def load_settings(
    path: Path | str | None = None, stack_dir: Path | str | None = None
) -> StackSettings:
    """Read the stack config; a missing file or key is one sentence naming it.

    ``stack_dir`` (``--dir``) wins over the file's ``dir``, which wins over
    ``$OPSLINE_HOME/stack``.
    """
    import yaml

    from opsline.workspace import home

    source = Path(path or os.environ.get("OPSLINE_STACK_CONFIG") or default_path())
    if not source.is_file():
        raise UsageError(f"Stack config {source} does not exist.")
    try:
        raw: dict[str, Any] = yaml.safe_load(source.read_text()) or {}
        pg, s3, ml = raw["postgres"], raw["s3"], raw.get("mlflow") or {}
        ports = {k: int(s3["internal_ports"][k]) for k in _INTERNAL}
        root = Path(stack_dir or raw.get("dir") or home() / "stack").expanduser().resolve()
        return StackSettings(
            host=str(raw.get("host") or "127.0.0.1"),
            dir=root,
            pg_port=int(pg["port"]),
            pg_superuser_password=str(pg["superuser_password"]),
            pg_os_user=str(pg.get("os_user") or "postgres"),
            mlflow_db=Database(**{k: str(v) for k, v in pg["mlflow"].items()}),
            opsline_db=Database(**{k: str(v) for k, v in pg["opsline"].items()}),
            s3_port=int(s3["port"]),
            access_key=str(s3["access_key"]),
            secret_key=str(s3["secret_key"]),
            region=str(s3.get("region") or "us-east-1"),
            bucket=str(s3["bucket"]),
            internal_ports=ports,
            mlflow_port=int(ml.get("port", 5000)),
            mlflow_workers=int(ml.get("workers", 1)),
            source=source,
        )
    except KeyError as error:
        raise UsageError(f"Stack config {source} is missing the key {error.args[0]!r}.") from None
    except (TypeError, ValueError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"Stack config {source} is invalid: {first}.") from None
