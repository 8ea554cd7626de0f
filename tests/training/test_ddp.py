"""Multi-process training (``trainer=ddp``, 2 CPU ranks over gloo) on the house_price MLP.

A DDP run must leave exactly what a single-process run leaves: one MLflow run, one version
with the same metric keys and model files, metrics files written by rank 0 only. A rank that
dies must fail the run (FAILED, nothing registered, exit 1 with one sentence) and leave no
process behind. One epoch of the tiny MLP keeps each run to seconds on 2 shared cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsline import pipeline
from opsline.errors import UsageError
from opsline.training.distributed import NullRun, World, local_processes, plan

TINY = ["model=mlp", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
DDP = ["trainer=ddp", "trainer.ddp_timeout_seconds=30"]  # a lost peer fails within 30 s
RANK_ENTRY = "opsline.training.ddp_rank"


def _client():
    from opsline.tracking.runs import client

    return client()


def _runs():
    mlflow = _client()
    experiment = mlflow.get_experiment_by_name("house_price")
    return mlflow.search_runs([experiment.experiment_id]) if experiment else []


def _model_files(run_id: str) -> set[str]:
    mlflow = _client()

    def walk(path: str) -> set[str]:
        out: set[str] = set()
        for item in mlflow.list_artifacts(run_id, path):
            out |= walk(item.path) if item.is_dir else {item.path}
        return out

    return walk("model")


def _rank_processes(home: Path) -> list[int]:
    """Live rank processes started for this workspace (matched by their OPSLINE_HOME)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if RANK_ENTRY.encode() in cmdline and f"OPSLINE_HOME={home}".encode() in environ:
            found.append(int(entry.name))
    return found


def _validation_runs(home: Path) -> float:
    from opsline.monitoring.textfile import read_samples

    samples = read_samples(home / "metrics" / "validation-house_price.prom")
    return sum(
        v for (name, _), v in samples.items() if name == "opsline_data_validation_runs_total"
    )


def test_ddp_run_has_the_single_process_shape(prepared_home: Path) -> None:
    from opsline.tracking.registry import list_versions

    single = pipeline.train("house_price", TINY)
    started = time.monotonic()
    ddp = pipeline.train("house_price", [*TINY, *DDP])
    print(f"ddp train: {time.monotonic() - started:.1f} s")

    runs = _runs()
    assert len(runs) == 2, "each training is one MLflow run, whatever its ranks"
    run = _client().get_run(ddp.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["world_size"] == "2"
    assert run.data.params["trainer.strategy"] == "ddp"

    versions = {v["version"]: v for v in list_versions("house_price")}
    assert sorted(versions) == ["1", "2"], "the DDP run registers exactly one version"
    assert (single.version, ddp.version) == ("1", "2")
    assert set(versions["2"]["metrics"]) == set(versions["1"]["metrics"])
    assert set(ddp.metrics) == set(single.metrics)
    assert ddp.metrics["test_rmsle"] > 0
    assert _model_files(ddp.run_id) == _model_files(single.run_id)
    # Per-epoch curves come from rank 0 alone: one point per epoch, not one per rank.
    assert [m.step for m in _client().get_metric_history(ddp.run_id, "val_loss")] == [0]

    # Metrics files: validation ran once per training (rank 1 skips it), the training
    # telemetry of the finished DDP fit is there and says so.
    assert _validation_runs(prepared_home) == 2
    training = (prepared_home / "metrics" / "training-house_price.prom").read_text()
    assert 'opsline_training_running{model="house_price"} 0.0' in training
    # Rank 1 logged into its own file, left no scratch model folder, and is gone.
    logs = list((prepared_home / "logs" / "ddp").glob("*-rank1.log"))
    assert len(logs) == 1 and "GLOBAL_RANK: 1" in logs[0].read_text()
    assert not list((prepared_home / "tmp").glob("house_price-rank-*"))
    assert _rank_processes(prepared_home) == []
    import torch.distributed as dist

    assert not dist.is_initialized(), "rank 0 leaves the world so a later run can build one"


def test_a_dying_rank_fails_the_run_and_registers_nothing(prepared_home: Path) -> None:
    env = {
        **os.environ,
        "OPSLINE_HOME": str(prepared_home),
        "OPSLINE_TEST_RANK_FAILURE": "1:2",
    }  # rank 1 raises at its third step
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "opsline", "train", "house_price", *TINY, *DDP],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    print(f"failing ddp train: {time.monotonic() - started:.1f} s")

    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Training failed: rank 1 of 2 exited with code 1"), last
    assert "Traceback" not in done.stderr
    runs = _runs()
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    from opsline.tracking.registry import list_versions

    assert list_versions("house_price") == []
    log = next((prepared_home / "logs" / "ddp").glob("*-rank1.log")).read_text()
    assert "InjectedRankFailure" in log
    assert _rank_processes(prepared_home) == []


def test_a_rank_dying_before_the_rendezvous_fails_at_once(
    prepared_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 0 does not sit out the whole ddp timeout when a rank never joins (a config
    error, missing data): it fails as soon as that rank exits. In-process: the API raises,
    and the caller's process is left as it was."""
    from opsline.training.distributed import DistributedTrainingError

    monkeypatch.setenv("OPSLINE_TEST_RANK_FAILURE", "1:start")
    started = time.monotonic()
    with pytest.raises(DistributedTrainingError, match="rank 1 of 2 exited with code 1"):
        pipeline.train("house_price", [*TINY, "trainer=ddp", "trainer.ddp_timeout_seconds=120"])
    assert time.monotonic() - started < 60, "rank 0 waited for the timeout"
    runs = _runs()
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "MASTER_PORT" not in os.environ
    assert _rank_processes(prepared_home) == []
    assert [
        p.name for p in (prepared_home / "logs" / "ddp").iterdir() if "ready" in p.name
    ] == [], "the readiness folder is removed"
    # The same process can train again right away (no world or launcher state left).
    monkeypatch.delenv("OPSLINE_TEST_RANK_FAILURE")
    assert pipeline.train("house_price", TINY).version == "1"


def test_plan_reads_the_world_from_config_and_launcher() -> None:
    from omegaconf import OmegaConf

    cpu = OmegaConf.create({"strategy": "auto", "devices": 1})
    ddp = OmegaConf.create({"strategy": "ddp", "devices": 2, "num_nodes": 1})
    assert plan(cpu) == World()
    assert plan(ddp) == World(rank=0, size=2, launch=1)
    assert local_processes(OmegaConf.create({"devices": "0,1,2"})) == 3
    assert local_processes(OmegaConf.create({"devices": "auto", "accelerator": "cpu"})) == 1
    with pytest.MonkeyPatch.context() as patch:  # started by torchrun: join, launch nothing
        patch.setenv("RANK", "3")
        patch.setenv("WORLD_SIZE", "4")
        assert plan(ddp) == World(rank=3, size=4)
        assert plan(cpu) == World(), "a single-process config ignores launcher variables"
        with pytest.raises(UsageError, match="opsline train"):  # every rank would prepare
            pipeline.run("house_price", ["model=mlp", "trainer=ddp"])
    with pytest.raises(UsageError, match="torchrun"):
        plan(OmegaConf.create({"strategy": "ddp", "devices": 2, "num_nodes": 2}))
    run = NullRun()
    run.log_metrics({"x": 1.0}, step=0)
    run.set_tags({"a": "b"})
    assert run.run_id == "" and run.artifact_uri("model") == ""


def test_torchrun_starts_every_rank_and_rank_zero_alone_registers(prepared_home: Path) -> None:
    """The multi-node path on one node: torchrun (c10d rendezvous) starts both ranks, each
    runs the CLI; opsline launches nothing and only rank 0 tracks and registers."""
    from opsline.tracking.registry import list_versions
    from opsline.training.distributed import _free_port

    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OPSLINE_HOME": str(prepared_home)}
    done = subprocess.run(
        [
            str(torchrun),
            "--nnodes=1",
            "--nproc-per-node=2",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
            "-m",
            "opsline",
            "train",
            "house_price",
            *TINY,
            *DDP,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("Registered house_price version 1") == 1
    runs = _runs()
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [v["version"] for v in list_versions("house_price")] == ["1"]
    assert not (prepared_home / "logs" / "ddp").exists(), "torchrun's ranks are not relaunched"
