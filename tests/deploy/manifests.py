"""Rendering and reading the Kubernetes manifests (deploy/k8s/) for the k8s and KServe
tests: `kubectl kustomize` from the venv, and small lookups over the rendered documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from opsline.serving.settings import ServingSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KSERVE = K8S / "kserve" / "inferenceservice.yaml"
OVERLAYS = ["dev", "prod"]
# The oldest Kubernetes the manifests are written for (preStop `sleep` is on by default from
# 1.30) and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]


def image_uid() -> int:
    """The numeric USER both images run as (deploy/docker/*.Dockerfile): the pods' runAsUser
    must be the same, or the workspace the image prepared is not theirs."""
    uids = {
        int(
            re.findall(r"^USER (\d+)", (ROOT / "deploy" / "docker" / f).read_text(), re.MULTILINE)[
                -1
            ]
        )
        for f in ("serve.Dockerfile", "train.Dockerfile")
    }
    assert len(uids) == 1, uids
    return uids.pop()


SETTINGS = set(ServingSettings.model_fields)
# OPSLINE_* variables that are not ServingSettings fields but are read elsewhere.
OTHER_OPSLINE_ENV = {"OPSLINE_HOME"}  # src/opsline/workspace.py


def venv_tool(name: str) -> str:
    tool = Path(sys.executable).with_name(name)
    assert tool.exists(), f"{name} is missing from the venv (requirements.lock)"
    return str(tool)


def kustomize(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [venv_tool("kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} rendered"
    return found[0]


def serve_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", "opsline-serve")["spec"]["template"]["spec"]["containers"][0]


def pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in docs if d["kind"] in {"Deployment", "Job"}]


def config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "ConfigMap")["data"]


def secret_data(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "Secret", "opsline-secrets").get("stringData", {})


def routes(client: TestClient) -> set[str]:
    """Paths the app serves, from its OpenAPI schema (FastAPI's public view of its routes;
    included routers are not flattened into ``app.routes`` in this FastAPI version)."""
    return set(client.app.openapi()["paths"])
