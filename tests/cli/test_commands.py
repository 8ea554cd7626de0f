"""The command line as a user meets it: exit codes, one-sentence errors, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import opsline


def test_help_lists_the_lifecycle(isolated_home: Path) -> None:
    result = opsline("--help", home=isolated_home)
    assert result.returncode == 0
    for command in ("recipes", "data", "train", "evaluate", "promote", "serve", "run"):
        assert command in result.stdout


def test_recipes_lists_house_price(isolated_home: Path) -> None:
    result = opsline("recipes", home=isolated_home)
    assert result.returncode == 0 and result.stdout.startswith("house_price")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "nope"], "Valid recipes: house_price"),
        (["train", "house_price", "experiment=nope"], "Valid experiments: baseline, high_lr"),
        (["data", "validate", "house_price", "model=nope"], "Valid models: gbm, mlp"),
    ],
)
def test_unknown_names_exit_2_with_choices(
    args: list[str], expected: str, isolated_home: Path
) -> None:
    result = opsline(*args, home=isolated_home)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_training_without_data_says_what_to_do(isolated_home: Path) -> None:
    result = opsline("train", "house_price", home=isolated_home)
    assert result.returncode == 1
    assert "run `opsline data prepare house_price` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_json_prints_the_production_metrics(trained_workspace: Path) -> None:
    result = opsline("evaluate", "house_price", "--json", home=trained_workspace)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert {"rmse", "mae", "rmsle", "mape", "within_5pct", "within_10pct", "within_20pct"} <= set(
        metrics
    )
    assert 0 < metrics["rmsle"] < 0.2


def test_promote_unknown_version(trained_workspace: Path) -> None:
    result = opsline("promote", "house_price", "--version", "999", home=trained_workspace)
    assert result.returncode == 1
    assert "has no version 999" in result.stderr
    listing = opsline("models", "house_price", home=trained_workspace)
    assert "production" in listing.stdout


def test_promote_needs_exactly_one_of_version_and_latest(isolated_home: Path) -> None:
    for args in ([], ["--version", "1", "--latest"]):
        result = opsline("promote", "house_price", *args, home=isolated_home)
        assert result.returncode == 2
        assert "Give either --version N or --latest." in result.stderr
        assert "Traceback" not in result.stderr


def test_promote_latest_without_versions_says_to_train(isolated_home: Path) -> None:
    result = opsline("promote", "house_price", "--latest", home=isolated_home)
    assert result.returncode == 2
    assert "No registered version of 'house_price' to promote" in result.stderr


def test_promote_latest_gates_the_newest_version(prepared_home: Path) -> None:
    """What the data workflow does after `dvc repro`: the version just trained faces the gate."""
    for _ in range(2):
        assert opsline("train", "house_price", "model=gbm", home=prepared_home).returncode == 0
    result = opsline("promote", "house_price", "--latest", home=prepared_home)
    assert result.returncode == 0, result.stderr
    assert "Promoted house_price version 2" in result.stdout
    listing = opsline("models", "house_price", home=prepared_home).stdout
    assert any(line.startswith("v2\t") and "production" in line for line in listing.splitlines())
