"""``opsline monitor drift`` as a user (or a cron job) meets it: the verdict, the table and
the exit code — 0 no drift, 1 drift, 2 no verdict with one sentence and no traceback.

The log holds what a client sending the four required fields logs (as in
``tests/serving/test_drift_api.py``): shifting two of them is half the tested features.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from opsline.monitoring.prediction_log import LogRow, PredictionLog
from opsline.monitoring.reference import REFERENCE_FILE
from opsline.recipes.registry import get_recipe
from tests.cli.runner import opsline

REQUIRED = ["neighborhood", "gr_liv_area", "overall_qual", "year_built"]


def fill_log(rows: int, *, shifted: bool = False) -> None:
    from opsline.data.dataset import load_dataset
    from opsline.workspace import data_dir

    recipe = get_recipe("house_price")
    train = load_dataset(data_dir("house_price"), "house_price").frame("train")
    requests = recipe.requests_from_frame(train[REQUIRED].sample(rows, random_state=11))
    features: list[dict[str, Any]] = recipe.monitored_features(requests, [None] * rows)
    if shifted:
        features = [
            {**f, "gr_liv_area": f["gr_liv_area"] * 1.8, "year_built": f["year_built"] + 25}
            for f in features
        ]
    log = PredictionLog.open()
    try:
        log.write(
            [
                LogRow(
                    request_id=f"r{i}",
                    ts=time.time(),
                    model="house_price",
                    version="1",
                    features=f,
                    prediction="{}",
                )
                for i, f in enumerate(features)
            ]
        )
    finally:
        log.close()


def test_reference_like_requests_exit_0_with_the_table(
    trained_workspace: Path, tmp_path: Path
) -> None:
    fill_log(300)
    report = tmp_path / "reports" / "drift.html"
    result = opsline(
        "monitor", "drift", "house_price", "--no-log", "--html", str(report), home=trained_workspace
    )
    assert result.returncode == 0, result.stderr
    verdict, header, *rows = result.stdout.splitlines()
    assert verdict.startswith("house_price v") and ": no data drift: " in verdict
    assert "300 requests (last 1000 requests)" in verdict
    assert header.split() == ["feature", "method", "score", "threshold", "drifted"]
    table = {line.split()[0]: line.split() for line in rows if not line.startswith("  not ")}
    assert set(table) == set(REQUIRED)
    assert table["gr_liv_area"][1:3] == ["K-S", "p_value"] and table["gr_liv_area"][-1] == "no"
    assert "not tested (no values on one side): " in rows[-1]  # the fields never sent
    assert "<html" in report.read_text().lower()
    assert "Reports logged" not in result.stderr


def test_drift_exits_1_and_logs_the_reports_to_the_version_run(trained_workspace: Path) -> None:
    from opsline.tracking.registry import resolve_model
    from opsline.tracking.runs import client

    fill_log(300, shifted=True)
    result = opsline("monitor", "drift", "house_price", "--window", "24h", home=trained_workspace)
    assert result.returncode == 1, result.stderr
    assert ": DATA DRIFT: " in result.stdout and "(last 24h)" in result.stdout
    drifted = {line.split()[0] for line in result.stdout.splitlines()[2:] if line.endswith(" yes")}
    assert {"gr_liv_area", "year_built"} <= drifted
    run_id = resolve_model("house_price").run_id
    assert f"Reports logged to run {run_id}: drift/drift-" in result.stderr
    logged = {Path(a.path).name for a in client().list_artifacts(run_id, "drift")}
    assert any(name.endswith(".html") for name in logged)
    assert any(name.endswith(".summary.json") for name in logged)


def test_too_few_requests_exit_2_with_one_sentence(trained_workspace: Path) -> None:
    fill_log(37)
    result = opsline("monitor", "drift", "house_price", home=trained_workspace)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "Error: not enough data (37 of 100 requests) logged for house_price in the last 1000 "
        "requests; wait for more requests or lower --min-rows"
    )


def test_a_version_without_reference_exits_2_saying_retrain(
    trained_workspace: Path, tmp_path: Path
) -> None:
    from opsline.tracking.registry import resolve_model

    ref = resolve_model("house_price")  # its files in the cache, copied below
    old = tmp_path / "old-home"
    old.mkdir()
    shutil.copy(trained_workspace / "mlflow.db", old / "mlflow.db")
    shutil.copytree(trained_workspace / "models", old / "models")
    (old / "models" / "house_price" / ref.version / "model" / REFERENCE_FILE).unlink()
    result = opsline("monitor", "drift", "house_price", home=old)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Error: model version {ref.version} has no drift reference (registered before drift "
        "detection); retrain to add one"
    )
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--window", "5x"], "Error: Invalid drift window '5x': give a number of requests"),
        (
            [],
            (
                "Error: No model 'house_price' has the alias 'production' yet: train one with "
                "`opsline run house_price`."
            ),
        ),
    ],
)
def test_no_model_or_a_bad_window_exit_2(
    isolated_home: Path, args: list[str], expected: str
) -> None:
    result = opsline("monitor", "drift", "house_price", *args, home=isolated_home)
    assert result.returncode == 2
    # (An empty workspace's first MLflow access logs its table creation before.)
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert "Traceback" not in result.stderr


# ``opsline monitor watch``: the retrain loop as a command. A policy that acts on the
# first drifted check (the shipped ones wait for 3 in a row, which ``--once`` never sees).
def eager_policy(directory: Path) -> Path:
    policy = directory / "eager.yaml"
    policy.write_text(
        "drift: {consecutive_checks: 1}\ncooldown_minutes: 0\n"
        "max_failures: 1\ntrain_overrides: [model=gbm]\n"
    )
    return policy


def jobs_in(home: Path) -> list[Any]:
    from opsline.jobs.store import JobStore

    return JobStore(home).search() if (home / "jobs.db").exists() else []


@pytest.mark.parametrize(("shifted", "decision"), [(False, "wait"), (True, "RETRAIN")])
def test_watch_dry_run_says_what_it_would_do_and_starts_nothing(
    trained_workspace: Path, tmp_path: Path, shifted: bool, decision: str
) -> None:
    fill_log(300, shifted=shifted)
    before = len(jobs_in(trained_workspace))
    result = opsline(
        "monitor",
        "watch",
        "house_price",
        "--policy",
        str(eager_policy(tmp_path)),
        "--dry-run",
        "--once",
        home=trained_workspace,
    )
    assert result.returncode == 0, result.stderr
    status, verdict, *notes = result.stdout.splitlines()
    assert status.startswith("house_price v")
    assert (
        "drift: DRIFT (50% of features, 300 requests)"
        if shifted
        else "drift: none (0% of features, 300 requests)"
    ) in status
    assert "live quality: no feedback yet" in status
    assert verdict.startswith(f"  decision: {decision} — ")
    if shifted:
        assert notes == [
            (
                "  dry run: would start a retrain job (model=gbm, feedback rows "
                "included) and let the gate decide"
            )
        ]
    else:
        assert notes == []
    assert "(dry run); one check." in result.stderr
    assert len(jobs_in(trained_workspace)) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--policy", "nope"],
            ("Error: Unknown retrain policy 'nope'. Valid policies: default, house_price"),
        ),
        (
            ["--policy", "off"],
            (
                "Error: The policy `off` retrains nothing, so there is nothing "
                "to watch: name a policy with --policy (or leave it out)."
            ),
        ),
        (
            [],
            (
                "Error: No model 'house_price' has the alias 'production' yet: train one with "
                "`opsline run house_price`."
            ),
        ),
    ],
)
def test_watch_without_a_model_or_policy_exits_2(
    isolated_home: Path, args: list[str], expected: str
) -> None:
    result = opsline("monitor", "watch", "house_price", "--once", *args, home=isolated_home)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_watch_once_retrains_through_a_job_and_the_gate_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own workspace: the retrain registers a version, which the shared one must not."""
    from opsline import pipeline
    from opsline.jobs.actions import ActionLog

    home = tmp_path / "home"
    monkeypatch.setenv("OPSLINE_HOME", str(home))
    monkeypatch.setenv("OPSLINE_PREDICTION_LOG_URI", f"sqlite:///{tmp_path / 'log.db'}")
    pipeline.run("house_price", ["model=gbm"])
    fill_log(300, shifted=True)
    result = opsline(
        "monitor",
        "watch",
        "house_price",
        "--policy",
        str(eager_policy(tmp_path)),
        "--once",
        home=home,
    )
    assert "Traceback" not in result.stderr
    [job] = jobs_in(home)
    [action] = ActionLog(home).recent("house_price")
    assert action.job_id == job.id and action.trigger == "drift"
    assert f"  retrain job {job.id} started" in result.stdout
    # No feedback yet, so the same data: the same model, and the gate lets an equal one in.
    assert (action.outcome, action.old_version, action.new_version) == ("promoted", "1", "2")
    assert result.stdout.splitlines()[-1] == (
        f"retrain job {job.id}: promoted (v1 → v2): {action.result}"
    )
    assert action.result.startswith("test_rmsle ") and "at least as good as v1" in action.result
    assert result.returncode == 0
