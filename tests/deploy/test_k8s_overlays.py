"""What the dev and prod overlays of deploy/k8s/ add: the training Job's command line is
one the CLI and Hydra accept, state is shared wherever there can be several replicas, prod
scales out and dev does not (and brings its own MLflow server, whose command line the real
`mlflow server` parses and whose Host check admits the Service name), the images are the
ones `make images` builds."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.deploy.manifests import (
    K8S,
    OVERLAYS,
    ROOT,
    config,
    kustomize,
    one,
    secret_data,
    serve_container,
    venv_tool,
)


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
