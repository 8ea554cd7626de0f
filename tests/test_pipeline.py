"""The lifecycle through the pipeline API: lineage in MLflow, and bad data stopping it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from opsline import pipeline
from opsline.errors import DataValidationError
from opsline.tracking.registry import list_versions, resolve_model
from opsline.tracking.runs import client
from opsline.workspace import data_dir


def test_invalid_data_is_reported_and_nothing_is_registered(isolated_home: Path) -> None:
    pipeline.prepare("house_price")
    train_file = data_dir("house_price") / "train.parquet"
    frame = pd.read_parquet(train_file)
    target = next(c for c in frame.columns if c.lower().replace("_", "") == "saleprice")
    frame.loc[3, target] = -1
    frame.to_parquet(train_file, index=False)

    result = pipeline.validate("house_price")
    assert not result.ok
    assert f"column {target!r}" in result.report() and "row 3" in result.report()
    with pytest.raises(DataValidationError, match=target):
        pipeline.train("house_price", ["model=gbm"])
    assert list_versions("house_price") == []
    assert client().search_runs([e.experiment_id for e in client().search_experiments()]) == []


def test_production_run_carries_config_metrics_and_lineage(trained_workspace: Path) -> None:
    ref = resolve_model("house_price")
    mlflow = client()
    run = mlflow.get_run(ref.run_id)
    dataset_version = pipeline._dataset("house_price").version
    assert run.data.tags["data_version"] == ref.data_version == dataset_version
    assert len(run.data.tags["git_commit"]) >= 7
    assert run.data.params["model.name"] == "gbm"
    assert {"val_rmsle", "test_rmsle", "test_within_10pct"} <= set(run.data.metrics)
    artifacts = {a.path for a in mlflow.list_artifacts(ref.run_id)}
    assert {"config.yaml", "model", "plots"} <= artifacts
    plots = {a.path for a in mlflow.list_artifacts(ref.run_id, "plots")}
    assert "plots/test_predicted_vs_actual.png" in plots
    assert "plots/test_residuals.png" in plots
    config_text = Path(mlflow.download_artifacts(ref.run_id, "config.yaml")).read_text()
    assert "name: gbm" in config_text and "seed: 42" in config_text
    # No pickle anywhere in what the server loads.
    assert not [p for p in ref.local_dir.rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib"}]


def test_mlp_logs_one_metric_point_per_epoch(isolated_home: Path) -> None:
    pipeline.prepare("house_price")
    result = pipeline.train("house_price", ["model=mlp", "trainer=debug"])
    history = client().get_metric_history(result.run_id, "val_loss")
    assert sorted(m.step for m in history) == [0, 1]
    assert result.metrics["test_rmsle"] > 0
