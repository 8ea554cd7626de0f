"""deploy/grafana/: the dashboard parses and every query uses metrics the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from opsline.monitoring.textfile import write_registry
from opsline.monitoring.training import TrainingTelemetry
from opsline.monitoring.validation import record_validation
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
# Only exported on a CUDA machine (the collector never imports torch to look for a GPU).
ONLY_WITH_GPU = {"opsline_gpu_memory_allocated_bytes", "opsline_gpu_memory_reserved_bytes"}
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def dashboard_queries() -> dict[str, list[str]]:
    dashboard = json.loads((GRAFANA / "dashboards" / "opsline.json").read_text())
    assert dashboard["uid"] == "opsline"
    queries = {
        p["title"]: [t["expr"] for t in p["targets"]]
        for p in dashboard["panels"]
        if p["type"] != "row"
    }
    assert all(queries.values()), "a panel without a query"
    return queries


def exported_names() -> set[str]:
    """Sample and family names of a real app's /metrics, with training/validation files."""
    from opsline.data.validation import Checks, ValidationResult

    telemetry = TrainingTelemetry("tiny")  # what a fit writes, without fitting
    write_registry(telemetry.registry, telemetry.path)
    record_validation("tiny", ValidationResult("v", {"train": 1}, []), Checks(schema=None))
    with TestClient(create_app(ServingSettings(ui=False))) as client:
        client.get("/health")
        text = client.get("/metrics").text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def test_dashboard_queries_reference_exported_metrics() -> None:
    names = exported_names()
    missing = {}
    for title, exprs in dashboard_queries().items():
        for expr in exprs:
            for metric in re.findall(r"\b(opsline_[a-z0-9_]+)", expr):
                base = next((metric[: -len(s)] for s in SUFFIXES if metric.endswith(s)), metric)
                if metric not in names and base not in names and metric not in ONLY_WITH_GPU:
                    missing.setdefault(title, []).append(metric)
    assert missing == {}


def test_dashboard_covers_the_issue_figures() -> None:
    text = json.dumps(dashboard_queries())
    for metric in (
        "opsline_http_requests_total",
        "opsline_http_request_duration_seconds_bucket",
        "opsline_inference_duration_seconds_bucket",
        "opsline_generated_tokens_total",
        "opsline_generation_batch_rows",
        "opsline_system_cpu_percent",
        "opsline_gpu_memory_allocated_bytes",
        "opsline_training_loss",
        "opsline_validation_loss",
        "opsline_training_epoch_progress",
        "opsline_training_steps_total",
        "opsline_data_validation_failed_checks",
        "opsline_model_loaded",
    ):
        assert metric in text, metric


def test_provisioning_points_at_the_dashboard_and_datasource() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (prometheus,) = datasource["datasources"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/opsline.yml").read_text())
    dashboard = json.loads((GRAFANA / "dashboards" / "opsline.json").read_text())
    uids = {
        t["datasource"]["uid"]
        for p in dashboard["panels"]
        if p["type"] != "row"
        for t in p["targets"]
    }
    assert uids == {prometheus["uid"]}
    compose = yaml.safe_load((GRAFANA.parent / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
