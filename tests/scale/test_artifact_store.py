"""A tracking server whose S3 credential is wrong: the run fails at its first write, in
seconds, before any training, with one sentence (and the run is FAILED in PostgreSQL)."""

from __future__ import annotations

import time

import psycopg2

from opsline.stack import mlflow_server, processes

from .conftest import Stack, cli, free_ports


def test_wrong_s3_credential_fails_before_training(trained: Stack) -> None:
    s = trained.settings
    [port] = free_ports(1)
    broken = mlflow_server.service(s, "mlflow-wrong-key")
    pid = mlflow_server.start(s, port=port, key="mlflow-wrong-key", secret_key="not-the-key")
    try:
        processes.wait_healthy(broken, pid, lambda: mlflow_server.healthy(s, port), 120)
        started = time.monotonic()
        result = cli(
            "train",
            "house_price",
            "model=gbm",
            f"tracking.uri=http://127.0.0.1:{port}",
            "tracking.experiment=wrong-key",
            home=trained.home,
        )
        elapsed = time.monotonic() - started
    finally:
        processes.stop(broken, grace=10)
    assert result.returncode == 1, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert "refused a test write before training" in error[0], error[0]
    assert "S3 bucket and credentials" in error[0]
    assert "Registered" not in result.stderr and "ONNX parity" not in result.stderr
    assert elapsed < 60, elapsed
    with (
        psycopg2.connect(
            host=s.client_host,
            port=s.pg_port,
            user=s.mlflow_db.user,
            password=s.mlflow_db.password,
            dbname=s.mlflow_db.database,
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(
            "SELECT r.status FROM runs r JOIN experiments e "
            "ON r.experiment_id = e.experiment_id WHERE e.name = 'wrong-key'"
        )
        assert [row[0] for row in cur.fetchall()] == ["FAILED"]
