"""`opsline sweep --parallel 2 --storage postgresql+psycopg2://…`: two worker processes on
one Optuna study in the stack's PostgreSQL, every trial a run on the MLflow server."""

from __future__ import annotations

import optuna

from .conftest import Stack, cli

# Tiny trials: a few boosting rounds; the sweep's search space is the recipe's own (gbm).
TINY = ["model=gbm", "model.n_estimators=30", "model.early_stopping_rounds=10"]


def test_two_workers_share_one_study_in_postgres(trained: Stack) -> None:
    s = trained.settings
    storage = s.pg_uri(s.opsline_db)
    result = cli(
        "sweep",
        "house_price",
        "--trials",
        "6",
        "--parallel",
        "2",
        "--storage",
        storage,
        "--study",
        "scale-sweep",
        *TINY,
        f"tracking.uri={s.tracking_uri}",
        home=trained.home,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="scale-sweep", storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) >= 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in finished)
    # Two processes took trials from the same study (worker = "<host>:<pid>").
    workers = {t.user_attrs.get("worker") for t in finished}
    assert len(workers) == 2, workers
    # Every trial is a run on the tracking server (its id recorded on the trial).
    from opsline.tracking.runs import client

    runs = {t.user_attrs["run_id"] for t in finished}
    mlflow = client(s.tracking_uri)
    assert {mlflow.get_run(r).info.status for r in runs} == {"FINISHED"}
