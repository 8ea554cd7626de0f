"""What every overlay of deploy/k8s/ renders, rendered with the real `kubectl kustomize`:
the whole application, valid against the Kubernetes OpenAPI schemas shipped in
`kubernetes-validate` (strict: unknown fields are errors); probes and the Prometheus path are
routes the real app serves and answer as the probe needs (liveness 200 with no model,
readiness 503 until one is loaded); every OPSLINE_* name is a ServingSettings field and
every value parses; secrets stay out of the ConfigMap; references between objects resolve;
the pods meet the "restricted" Pod Security Standard their namespaces enforce. No cluster
here: nothing is applied (see docs/team/images-and-kubernetes.md)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
from fastapi.testclient import TestClient

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings
from tests.deploy.manifests import (
    KUBE_VERSIONS,
    OTHER_OPSLINE_ENV,
    OVERLAYS,
    SETTINGS,
    config,
    image_uid,
    one,
    pod_specs,
    routes,
    secret_data,
    serve_container,
)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_whole_application(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "Job"} <= kinds
    namespace = one(docs, "Namespace")["metadata"]["name"]
    assert all(
        d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace"
    )
    # The generated ConfigMap carries a content hash, and the pods refer to that name.
    assert re.fullmatch(r"opsline-config-[a-z0-9]{10}", one(docs, "ConfigMap")["metadata"]["name"])


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_documents_pass_the_kubernetes_schemas(
    rendered, overlay: str, version: str
) -> None:
    for doc in rendered[overlay]:
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_rejects_a_broken_manifest(rendered) -> None:
    # Guards the test above: a misspelt probe field and a string replica count must fail.
    deployment = copy.deepcopy(one(rendered["prod"], "Deployment", "opsline-serve"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)
    deployment = copy.deepcopy(one(rendered["prod"], "Deployment", "opsline-serve"))
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_hit_routes_that_answer_as_the_probe_needs(
    rendered, overlay: str, empty_app: TestClient
) -> None:
    container = serve_container(rendered[overlay])
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    served = routes(empty_app)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in served, f"{probe} {get['path']}: no such route"
        assert get["port"] in port_names or get["port"] in port_names.values()
    assert container["readinessProbe"]["httpGet"]["path"] in {"/ready", "/v2/health/ready"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    # No model promoted yet: the pod must stay alive (200) but out of the Service (503),
    # or it would be restarted in a loop / sent traffic it cannot answer.
    for probe in ("startupProbe", "livenessProbe"):
        assert empty_app.get(container[probe]["httpGet"]["path"]).status_code == 200
    assert empty_app.get(container["readinessProbe"]["httpGet"]["path"]).status_code == 503


def test_readiness_passes_once_a_model_is_loaded(rendered, tmp_path: Path) -> None:
    from tests.serving.conftest import StubRecipe

    model_dir = tmp_path / "stub-model"
    model_dir.mkdir()
    (model_dir / "stub.json").write_text(json.dumps({"slope": 2.0}))
    app = create_app(
        ServingSettings(recipe="stub", model_uri=str(model_dir), ui=False, prediction_log=False),
        recipe=StubRecipe(),
    )
    path = serve_container(rendered["prod"])["readinessProbe"]["httpGet"]["path"]
    with TestClient(app) as client:
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_every_opsline_setting_is_real_and_parses(
    rendered, overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered[overlay]
    settings = {**config(docs), **secret_data(docs)}
    for key in settings:
        assert key.startswith("OPSLINE_"), f"{key}: not an opsline setting"
        # pydantic-settings ignores unknown names: a typo would silently do nothing.
        assert key.removeprefix("OPSLINE_").lower() in SETTINGS, f"{key}: no such setting"
    for name in {
        e["name"]
        for spec in pod_specs(docs)
        for c in spec["containers"]
        for e in c.get("env", [])
        if e["name"].startswith("OPSLINE_")
    }:
        assert name.removeprefix("OPSLINE_").lower() in SETTINGS or name in OTHER_OPSLINE_ENV
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    parsed = ServingSettings()  # raises on any value of the wrong type or form
    assert parsed.port == int(config(docs)["OPSLINE_PORT"])
    assert parsed.host == "0.0.0.0"
    assert parsed.retrain_policy == "off"  # several replicas must not each retrain
    assert parsed.api_key is not None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_stay_out_of_the_configmap_and_are_marked_placeholders(
    rendered, overlay: str
) -> None:
    docs = rendered[overlay]
    assert "OPSLINE_API_KEY" not in config(docs)
    assert not any("@" in v for v in config(docs).values())  # no credentials in URIs
    secrets = secret_data(docs)
    assert secrets and all(v.startswith("CHANGE-ME") or "CHANGE-ME" in v for v in secrets.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_annotations_match_the_served_port_and_path(
    rendered, overlay: str, empty_app: TestClient
) -> None:
    docs = rendered[overlay]
    annotations = one(docs, "Deployment", "opsline-serve")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/scrape"] == "true"
    (port,) = serve_container(docs)["ports"]
    assert (
        int(annotations["prometheus.io/port"])
        == port["containerPort"]
        == int(config(docs)["OPSLINE_PORT"])
    )
    response = empty_app.get(annotations["prometheus.io/path"])
    assert response.status_code == 200
    assert "opsline_model_loaded" in response.text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_between_objects_resolve(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    configmaps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    secrets = {
        d["metadata"]["name"]: {**d.get("data", {}), **d.get("stringData", {})}
        for d in docs
        if d["kind"] == "Secret"
    }
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for spec in pod_specs(docs):
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounted <= {v["name"] for v in spec.get("volumes", [])}
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    deployment = one(docs, "Deployment", "opsline-serve")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(docs, "Service", "opsline-serve")
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in serve_container(docs)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        for doc in (d for d in docs if d["kind"] == kind):
            if kind == "HorizontalPodAutoscaler":
                assert doc["spec"]["scaleTargetRef"]["name"] == "opsline-serve"
                # CPU utilisation is relative to the request: without one the HPA is blind.
                assert serve_container(docs)["resources"]["requests"]["cpu"]
            else:
                assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_the_restricted_pod_security_standard(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    namespace = one(docs, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for spec in pod_specs(docs):
        pod = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is True
            assert ctx.get("runAsUser", pod.get("runAsUser")) == image_uid()
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert ctx.get("seccompProfile", pod.get("seccompProfile")) == {
                "type": "RuntimeDefault"
            }
        allowed = {"emptyDir", "persistentVolumeClaim", "configMap", "secret", "projected"}
        assert all(set(v) - {"name"} <= allowed for v in spec.get("volumes", []))
