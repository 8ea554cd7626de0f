"""Fail fast against a remote tracking server: reachability and the artifact store.

MLflow retries HTTP errors with exponential backoff (7 retries by default: minutes of
waiting on a server that is down), and a wrong S3 credential or bucket only shows when the
first model files are uploaded, after training. So before talking to a server we check
that it answers, and when a run starts we write one small file to its artifact store:
both problems become one sentence in seconds.
"""

from __future__ import annotations

import os
import time
from typing import Any

from opsline.errors import OpslineError

# A server that answered recently is not asked again (a pipeline opens many clients).
_REACHED_TTL_S = 10.0
_reached: dict[str, float] = {}
_checked_stores: set[tuple[str, str]] = set()


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def bound_retries() -> None:
    """Keep MLflow's HTTP retries short (users can still raise them in the environment)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def ensure_reachable(uri: str) -> None:
    """Raise one sentence if the tracking server at ``uri`` does not answer."""
    import ssl
    import urllib.error
    import urllib.request

    now = time.monotonic()
    if now - _reached.get(uri, -_REACHED_TTL_S) < _REACHED_TTL_S:
        return
    timeout = float(os.environ.get("OPSLINE_TRACKING_TIMEOUT", "5"))
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # it answered (e.g. a proxy without /health): reachable
    except urllib.error.URLError as error:
        # A private CA is MLflow's business (MLFLOW_TRACKING_SERVER_CERT_PATH), not ours.
        if not isinstance(error.reason, ssl.SSLError):
            raise _unreachable(uri, error.reason) from None
    except OSError as error:  # e.g. a timeout while reading
        raise _unreachable(uri, error) from None
    _reached[uri] = now


def _unreachable(uri: str, reason: Any) -> OpslineError:
    text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return OpslineError(
        f"The MLflow tracking server at {uri} is unreachable ({text}); start "
        f"it (`opsline stack up` for the local stack) or fix tracking.uri / "
        f"OPSLINE_TRACKING_URI."
    )


def check_artifact_store(mlflow_client: Any, run: Any) -> None:
    """Write a small file into the new run's artifacts; a refusal is one sentence.

    Only for remote stores (S3, a proxying server); once per experiment and process, so a
    sweep's trials do not each pay for it.
    """
    from urllib.parse import urlparse

    root = run.info.artifact_uri
    key = (str(mlflow_client.tracking_uri), run.info.experiment_id)
    if urlparse(root).scheme in ("", "file") or key in _checked_stores:
        return
    text = "opsline checks that this store accepts writes before training.\n"
    server = str(mlflow_client.tracking_uri)
    try:
        if urlparse(root).scheme == "mlflow-artifacts" and is_server(server):
            _put_proxied(server, root, "opsline/preflight.txt", text.encode())
        else:
            mlflow_client.log_text(run.info.run_id, text, "opsline/preflight.txt")
    except Exception as error:  # noqa: BLE001 - boto3, HTTP and MLflow errors alike
        where = (
            "the tracking server's S3 bucket and credentials"
            if urlparse(root).scheme == "mlflow-artifacts"
            else "MLFLOW_S3_ENDPOINT_URL, AWS_* and the bucket"
        )
        raise OpslineError(
            f"The artifact store {root} refused a test write before training "
            f"({_first_line(error)}); check {where}."
        ) from None
    _checked_stores.add(key)


def _put_proxied(server: str, root: str, path: str, body: bytes) -> None:
    """Upload through the server's artifact proxy once, without MLflow's retries, so the
    server's own reason (e.g. the S3 error) reaches the user instead of "too many 500s"."""
    import json
    import urllib.error
    import urllib.request

    # mlflow-artifacts:/1/RUN/artifacts -> /api/2.0/mlflow-artifacts/artifacts/1/RUN/artifacts
    relative = root.split(":", 1)[1].lstrip("/")
    url = f"{server.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{relative}/{path}"
    request = urllib.request.Request(url, data=body, method="PUT")
    timeout = float(os.environ.get("OPSLINE_TRACKING_TIMEOUT", "5")) * 6
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as error:
        raw = error.read().decode(errors="replace")
        try:
            reason = json.loads(raw).get("message") or raw
        except ValueError:
            reason = raw
        raise RuntimeError(f"HTTP {error.code}: {reason.strip() or error.reason}") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."
