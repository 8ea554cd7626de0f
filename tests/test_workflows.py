"""The GitHub Actions workflows, CI entry point and pre-commit hooks: they cannot run here (no
GitHub), so each is checked against GitHub's workflow schema, and every command they call is
checked to exist as a make target; the registry workflow's target runs for real."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _workflow(name: str) -> dict:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1); GitHub reads it as "on".
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def _run_lines(workflow: dict) -> list[str]:
    return [
        step["run"]
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "run" in step
    ]


def _make_targets(command: str) -> list[str]:
    """The targets of each `make …` in a shell command (variables like X=1 are not targets)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    targets, in_make = [], False
    for word in lexer:
        if word in ("&&", "||", ";", "|", "&"):
            in_make = False
        elif word == "make":
            in_make = True
        elif in_make and not word.startswith("-") and "=" not in word:
            targets.append(word)
    return targets


def test_the_four_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "docs.yml", "data.yml", "registry.yml"}


def test_workflows_are_valid_against_githubs_schema() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  a:\n    steps: [{run: make lint}]\n")
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", broken],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0  # a job without runs-on is not a workflow


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_make_target_a_workflow_calls_exists(workflow: Path) -> None:
    targets = [t for line in _run_lines(_workflow(workflow.name)) for t in _make_targets(line)]
    assert targets, f"{workflow.name} calls no make target"
    for target in targets:
        result = subprocess.run(
            ["make", "-n", "-C", str(ROOT), target],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{workflow.name}: make {target}: {result.stderr}"


def test_the_make_target_parser_reads_variables_apart_from_targets() -> None:
    assert _make_targets("make test PYTEST_ARGS='-m \"x\"'") == ["test"]
    assert _make_targets("make setup && .venv/bin/dvc pull") == ["setup"]
    assert _make_targets('make retrain RECIPE="$RECIPE"') == ["retrain"]


def test_ci_lints_before_it_tests_like_the_local_entry_point() -> None:
    ci = _workflow("ci.yml")
    assert ci["jobs"]["test"]["needs"] == "lint"
    assert _make_targets(" ".join(_run_lines({"jobs": {"l": ci["jobs"]["lint"]}}))) == ["lint"]
    assert _make_targets(" ".join(_run_lines({"jobs": {"t": ci["jobs"]["test"]}}))) == ["test"]
    local = (ROOT / ".ci" / "run").read_text()
    assert local.index("make lint") < local.index("make test")
    # The matrix covers the whole suite between its parts.
    marks = [s["marks"] for s in ci["jobs"]["test"]["strategy"]["matrix"]["suite"]]
    assert sorted(marks) == sorted(["not quality and not browser", "quality or browser"])
    for job in ci["jobs"].values():  # pip downloads cached, keyed on the lock
        cache = [s for s in job["steps"] if s.get("uses", "").startswith("actions/cache")]
        assert cache and "requirements.lock" in cache[0]["with"]["key"]


def test_docs_workflow_publishes_what_make_docs_builds() -> None:
    docs = _workflow("docs.yml")
    steps = docs["jobs"]["build"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages"))
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "docs"], capture_output=True, text=True, check=True
    ).stdout
    assert "--strict" in dry and f"--site-dir {upload['with']['path']}" in dry
    deploy = docs["jobs"]["deploy"]["steps"]
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in deploy)
    assert docs["permissions"]["pages"] == "write"


def test_data_workflow_runs_when_data_or_the_dvc_lock_change() -> None:
    data = _workflow("data.yml")
    paths = data["on"]["push"]["paths"]
    assert "dvc.lock" in paths and "data/**" in paths
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "retrain"], capture_output=True, text=True, check=True
    ).stdout
    # validate → retrain → gate: the DVC pipeline, then the promotion gate on what it trained
    assert dry.index("dvc repro") < dry.index("opsline promote")
    assert "--latest" in dry


def test_registry_workflow_answers_a_promotion_dispatch() -> None:
    registry = _workflow("registry.yml")
    assert registry["on"]["repository_dispatch"]["types"] == ["model-promoted"]
    assert "client_payload.recipe" in registry["env"]["RECIPE"]
    upload = [
        s
        for s in registry["jobs"]["release-check"]["steps"]
        if s.get("uses", "").startswith("actions/upload-artifact")
    ]
    assert upload and upload[0]["if"] == "always()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _release_check(home: Path, report: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(ROOT), "release-check", f"PORT={_free_port()}", f"BIN={BIN}"],
        env={
            **os.environ,
            "OPSLINE_HOME": str(home),
            "REPORT_DIR": str(report),
            "LOADTEST_S": "4",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_release_check_serves_load_tests_and_attaches_the_report(
    trained_workspace: Path, tmp_path: Path
) -> None:
    """What the registry workflow runs, here for real against a trained workspace."""
    from opsline.tracking.registry import list_versions
    from opsline.tracking.runs import client

    report = tmp_path / "release"
    result = _release_check(trained_workspace, report, SLO_P95_MS="5000")
    assert result.returncode == 0, result.stdout + result.stderr
    served = json.loads((report / "model.json").read_text())
    production = next(r for r in list_versions("house_price") if "production" in r["aliases"])
    assert str(served["version"]) == production["version"]
    summary = json.loads((report / "loadtest" / "summary.json").read_text())
    assert summary["slo"]["passed"] is True
    predict = summary["endpoints"][summary["slo"]["endpoint"]]
    assert predict["requests"] > 0 and predict["failures"] == 0
    artifacts = client().list_artifacts(production["run_id"])
    assert any(a.path.startswith("loadtests") for a in artifacts), [a.path for a in artifacts]


def test_release_check_fails_when_the_slo_is_broken(
    trained_workspace: Path, tmp_path: Path
) -> None:
    result = _release_check(trained_workspace, tmp_path / "release", SLO_P95_MS="0.001")
    assert result.returncode != 0
    assert "SLO" in result.stdout + result.stderr


def test_pre_commit_config_is_valid_and_uses_the_locked_tools() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "end-of-file-fixer", "check-added-large-files"} <= set(
        hooks
    )
    for hook in hooks.values():
        executable = hook["entry"].split()[0]
        assert (ROOT / executable).exists(), f"{hook['id']}: {executable} is not installed"
    result = subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_passes_on_a_clean_clone(tmp_path: Path) -> None:
    """Every hook on every committed file, in a clone (so a fix never touches this tree)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    result = subprocess.run(
        [str(BIN / "pre-commit"), "run", "--all-files", "--show-diff-on-failure"],
        cwd=clone,
        env={**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    shutil.rmtree(clone, ignore_errors=True)
