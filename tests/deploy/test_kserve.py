"""The KServe InferenceService (deploy/k8s/kserve/): its structure, its predictor container
valid against the core Container schema, and its probes and OIP routes served by the real
app."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import yaml
from fastapi.testclient import TestClient

from tests.deploy.manifests import (
    KSERVE,
    KUBE_VERSIONS,
    SETTINGS,
    image_uid,
    one,
    routes,
    secret_data,
)


# KServe's InferenceService is a custom resource: kubernetes-validate has no schema for it
# (only core API groups), so its structure is checked here, and its predictor container is
# validated against the core Container schema by wrapping it in a Pod.
def kserve() -> dict[str, Any]:
    return yaml.safe_load(KSERVE.read_text())


def test_kserve_inferenceservice_structure(rendered) -> None:
    isvc = kserve()
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", isvc["metadata"]["name"])
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] >= 1  # no scale-to-zero: a cold start loads a model
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"  # other names are sidecars to KServe
    assert container["image"].rsplit("/", 1)[-1].startswith("opsline-serve:")
    env = {e["name"]: e for e in container["env"]}
    assert all(k.removeprefix("OPSLINE_").lower() in SETTINGS for k in env)
    (port,) = container["ports"]  # Knative: exactly one port
    assert port["containerPort"] == int(env["OPSLINE_PORT"]["value"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["containerPort"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    annotations = isvc["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    assert annotations["prometheus.io/path"] == "/metrics"
    # Secrets it reads are the prod overlay's, in the prod namespace.
    prod = rendered["prod"]
    assert isvc["metadata"]["namespace"] == one(prod, "Namespace")["metadata"]["name"]
    for variable in env.values():
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == "opsline-secrets" and ref["key"] in secret_data(prod)
    assert container["securityContext"]["runAsUser"] == image_uid()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kserve-predictor"},
        "spec": {"containers": [container]},
    }
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(pod, version, strict=True)


def test_kserve_probes_and_oip_routes_are_served(empty_app: TestClient) -> None:
    container = kserve()["spec"]["predictor"]["containers"][0]
    served = routes(empty_app)
    assert {"/v2/models/{model_name}/infer", "/v2/models/{model_name}"} <= served
    assert empty_app.get(container["livenessProbe"]["httpGet"]["path"]).status_code == 200
    ready = empty_app.get(container["readinessProbe"]["httpGet"]["path"])
    assert ready.status_code == 503 and ready.json()["ready"] is False
