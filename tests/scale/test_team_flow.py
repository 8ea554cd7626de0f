"""A team's path on the real stack: train and register against the MLflow server (runs in
PostgreSQL, files in S3), serve the production model from it with the prediction log in the
same PostgreSQL, and live through the tracking server going down."""

from __future__ import annotations

import time

import psycopg2
from fastapi.testclient import TestClient

from opsline.recipes.registry import get_recipe
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings
from opsline.stack import manager, mlflow_server, processes, s3

from .conftest import Stack, cli


def _query(stack: Stack, db, sql: str, args: tuple = ()) -> list[tuple]:
    s = stack.settings
    with (
        psycopg2.connect(
            host=s.client_host,
            port=s.pg_port,
            user=db.user,
            password=db.password,
            dbname=db.database,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql, args)
        return cur.fetchall()


def test_run_is_rows_in_postgres_and_objects_in_the_bucket(trained: Stack) -> None:
    db = trained.settings.mlflow_db
    runs = _query(
        trained,
        db,
        "SELECT r.run_uuid, r.status FROM runs r JOIN experiments e "
        "ON r.experiment_id = e.experiment_id WHERE e.name = %s",
        ("house_price",),
    )
    assert runs and all(status == "FINISHED" for _, status in runs)
    versions = _query(
        trained, db, "SELECT version, run_id FROM model_versions WHERE name = 'house_price'"
    )
    aliases = _query(
        trained,
        db,
        "SELECT alias, version FROM registered_model_aliases WHERE name = 'house_price'",
    )
    assert ("production", versions[0][0]) in aliases
    # Proxied artifacts: the server wrote them under s3://BUCKET/mlflow/<exp>/<run>/artifacts.
    listed = s3.client(trained.settings).list_objects_v2(
        Bucket=trained.settings.bucket, Prefix="mlflow/"
    )
    keys = [o["Key"] for o in listed.get("Contents", [])]
    run_id = versions[0][1]
    model_files = [k for k in keys if f"/{run_id}/" in k]
    assert any(k.endswith("model.onnx") for k in model_files), model_files[:20]
    assert any(k.endswith("preflight.txt") for k in model_files)


def test_served_from_the_server_logs_to_postgres_and_outlives_it(trained: Stack) -> None:
    s = trained.settings
    settings = ServingSettings(
        recipe="house_price",
        tracking_uri=s.tracking_uri,
        prediction_log_uri=s.pg_uri(s.opsline_db),
        ui=False,
        reload_interval_s=1,
    )
    body = get_recipe("house_price").sample_requests()[0].model_dump(mode="json")
    mlflow = mlflow_server.service(s)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            first = client.post("/predict", json=body)
            assert first.status_code == 200, first.text
            rows = _query(
                trained,
                s.opsline_db,
                "SELECT model, version, predicted_value FROM predictions ORDER BY id",
            )
            assert rows and rows[-1][0] == "house_price"
            assert rows[-1][2] == first.json()["predicted_price"]

            # Only the tracking server goes down: the app keeps its loaded model while its
            # reloader's polls of the registry fail.
            assert processes.stop(mlflow, grace=10)
            time.sleep(2.5)
            again = client.post("/predict", json=body)
            assert again.status_code == 200 and again.json() == first.json()

        # The CLI says so in one sentence, quickly, and exits non-zero.
        started = time.monotonic()
        result = cli(
            "models", "house_price", home=trained.home, env={"OPSLINE_TRACKING_URI": s.tracking_uri}
        )
        elapsed = time.monotonic() - started
        assert result.returncode == 1
        message = result.stderr.strip()
        assert message.startswith(
            f"Error: The MLflow tracking server at {s.tracking_uri} is unreachable"
        ), message
        assert len(message.splitlines()) == 1 and "Traceback" not in message
        assert elapsed < 30, elapsed  # CLI start-up included; no retry storm
        train = cli(
            "train", "house_price", "model=gbm", f"tracking.uri={s.tracking_uri}", home=trained.home
        )
        assert train.returncode == 1 and "is unreachable" in train.stderr
        assert "Registered" not in train.stderr
    finally:
        manager.up(s, lambda _: None)  # the other tests want it back
