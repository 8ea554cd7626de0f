"""The Kubernetes manifests (deploy/k8s/): each overlay is rendered with the real
`kubectl kustomize`, every rendered document is validated offline against the Kubernetes
OpenAPI schemas shipped in `kubernetes-validate` (strict: unknown fields are errors), and the
parts that schemas cannot judge are checked against the real application: probes and the
Prometheus path are routes the app serves and answer as the probe needs (liveness 200 with
no model, readiness 503 until one is loaded), every OPSLINE_* name is a ServingSettings field
and every value parses, references between objects resolve, the pods meet the "restricted"
Pod Security Standard their namespaces enforce, and the training Job's command line is one
the CLI and Hydra accept. No cluster here: nothing is applied (see
docs/team/images-and-kubernetes.md)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    # The base too: an overlay may override a base value, which must still be valid.
    return {
        "base": kustomize(K8S / "base"),
        **{name: kustomize(K8S / "overlays" / name) for name in OVERLAYS},
    }


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


@pytest.fixture(scope="module")
def empty_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real house_price app over an empty workspace: the state of every pod before the
    training Job has promoted a model. One per module: creating its MLflow store takes
    seconds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(tmp_path_factory.mktemp("empty-workspace")))
        with TestClient(
            create_app(ServingSettings(ui=False, drift_interval_s=0, reload_interval_s=0)),
            raise_server_exceptions=False,
        ) as client:
            yield client


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


def cli_commands() -> str:
    return subprocess.run(
        [venv_tool("opsline"), "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_train_job_runs_a_command_the_cli_and_hydra_accept(rendered, overlay: str) -> None:
    from opsline.config import load_config

    docs = rendered[overlay]
    job = one(docs, "Job", "opsline-train")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["image"].rsplit("/", 1)[-1].startswith("opsline-train:")
    assert "command" not in container  # the image's `opsline` entrypoint
    environment = {
        k: v
        for source in container["envFrom"]
        for k, v in one(docs, "ConfigMap", source["configMapRef"]["name"])["data"].items()
    }
    environment.update({e["name"]: e.get("value", "<secret>") for e in container["env"]})
    # Kubernetes leaves an undefined $(VAR) in place, literally: every one must be defined.
    args = []
    for arg in container["args"]:
        for var in re.findall(r"\$\(([A-Z_]+)\)", arg):
            assert var in environment, f"$({var}) is not in the Job's environment"
        args.append(re.sub(r"\$\(([A-Z_]+)\)", lambda m: environment[m[1]], arg))
    command, recipe, *overrides = args
    assert re.search(rf"^\s*│?\s*{command}\s", cli_commands(), re.MULTILINE)
    cfg = load_config(recipe, overrides)  # the recipe exists and Hydra parses the overrides
    # The run lands on the tracking server the server follows.
    assert cfg.tracking.uri == config(docs)["OPSLINE_TRACKING_URI"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_state_is_shared_when_there_can_be_several_replicas(rendered, overlay: str) -> None:
    docs = rendered[overlay]
    deployment = one(docs, "Deployment", "opsline-serve")
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    # Under an HPA, a replica count in the manifest would be re-applied on every apply.
    assert ("replicas" in deployment["spec"]) != bool(hpas)
    replicas = deployment["spec"].get("replicas", 1)
    most = max([replicas] + [h["spec"]["maxReplicas"] for h in hpas])
    # A tracking server, never a pod-local SQLite store: the Job and the pods must meet.
    assert re.match(r"https?://", config(docs)["OPSLINE_TRACKING_URI"])
    log_uri = secret_data(docs).get("OPSLINE_PREDICTION_LOG_URI")
    if most > 1:
        # Each pod's own SQLite log would split drift and live quality by pod.
        assert log_uri and log_uri.startswith("postgresql+psycopg2://")
        env = {e["name"] for e in serve_container(docs)["env"]}
        assert "OPSLINE_PREDICTION_LOG_URI" in env
        from sqlalchemy.engine import make_url

        url = make_url(log_uri)
        assert url.drivername == "postgresql+psycopg2" and url.database
        import psycopg2  # noqa: F401  - the driver the URI names is in the image (lock)
    else:
        assert not hpas and log_uri is None


def test_prod_scales_out_and_dev_does_not(rendered) -> None:
    prod, dev = rendered["prod"], rendered["dev"]
    hpa = one(prod, "HorizontalPodAutoscaler")
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert one(prod, "PodDisruptionBudget")["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    assert one(dev, "Deployment", "opsline-serve")["spec"]["replicas"] == 1
    assert not [d for d in dev if d["kind"] in {"HorizontalPodAutoscaler", "PodDisruptionBudget"}]
    # Dev brings its own tracking server, and the ConfigMap points at its Service.
    service = one(dev, "Service", "mlflow")
    assert (
        config(dev)["OPSLINE_TRACKING_URI"]
        == f"http://mlflow:{service['spec']['ports'][0]['port']}"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_ones_make_builds(rendered, overlay: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    docs = rendered[overlay]
    serve = serve_container(docs)["image"]
    train = one(docs, "Job")["spec"]["template"]["spec"]["containers"][0]["image"]
    for image, name in ((serve, "opsline-serve"), (train, "opsline-train")):
        assert image.rsplit("/", 1)[-1].split(":")[0] == name
        assert f"$(REGISTRY){name}:$(TAG)" in makefile
        assert ":" in image.rsplit("/", 1)[-1]  # a tag, never an implicit :latest pull


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


def test_dev_mlflow_server_accepts_its_own_service_name() -> None:
    """The dev overlay's MLflow command line, parsed by the real `mlflow server` command and
    its Host check: MLflow 3 refuses Host headers other than localhost and private IPs, so
    the Service name clients use must be allowed. (Starting the server takes ~45 s on this
    machine, too long for the suite; parsing catches a wrong option, this the wrong host.)"""
    from mlflow.cli import server
    from mlflow.server.security_utils import is_allowed_host_header

    docs = kustomize(K8S / "overlays" / "dev")
    container = one(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlflow"] and container["args"][0] == "server"
    context = server.make_context("server", list(container["args"][1:]))
    params = context.params
    assert params["port"] == container["ports"][0]["containerPort"]
    assert params["host"] == "0.0.0.0" and params["serve_artifacts"]
    allowed = params["allowed_hosts"].split(",")
    service = one(docs, "Service", "mlflow")
    namespace = one(docs, "Namespace")["metadata"]["name"]
    port = service["spec"]["ports"][0]["port"]
    for host in ("mlflow", f"mlflow:{port}", f"mlflow.{namespace}.svc:{port}"):
        assert is_allowed_host_header(allowed, host), host
    assert not is_allowed_host_header(allowed, "evil.example.com")
    # The probes' /health is a route MLflow exempts from the Host check.
    from mlflow.server.security_utils import is_health_endpoint

    assert is_health_endpoint(container["readinessProbe"]["httpGet"]["path"])
    # The URI the opsline pods use points at this Service.
    assert config(docs)["OPSLINE_TRACKING_URI"] == f"http://{service['metadata']['name']}:{port}"
