"""Multi-process (DDP) training: who is rank 0, and the local ranks rank 0 launches.

Every rank runs the same ``pipeline.train``; only **rank 0** tracks, writes metrics files,
exports, evaluates and registers. The other ranks train their shard of each step and leave
no trace (see :func:`opsline.pipeline.train`).

How the processes come to exist:

* **One node (``trainer=ddp``, ``trainer.devices=N``)**: the calling process is rank 0 and
  starts ranks 1..N-1 itself as ``python -m opsline.training.ddp_rank RECIPE OVERRIDES``
  (:class:`LocalRanks`). Lightning's own launcher for ``ddp`` re-runs ``sys.argv`` instead,
  which re-runs *pytest*, the job worker or the server when training is called in-process,
  and it SIGKILLs the calling process when a child fails, so the MLflow run could never be
  marked FAILED. ``ddp_spawn`` would pickle the module, the data and the run handle into
  every child. Our own entry point has neither problem.
* **Several nodes**: ``torchrun`` starts every rank on every node (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK`` … in the environment); opsline launches nothing and only reads its rank.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from opsline.errors import OpslineError, UsageError

# Strategies whose ranks opsline launches or joins; others (ddp_spawn, fsdp …) go to
# Lightning unchanged, single-process as far as opsline is concerned.
DDP_STRATEGIES = ("ddp",)
STOP_GRACE_SECONDS = 5.0  # SIGTERM → SIGKILL for a rank that outlives its run
# A rank opsline launched touches <dir>/rank<i> right before it joins the process group.
READY_ENV = "OPSLINE_DDP_READY_DIR"


class DistributedTrainingError(OpslineError):
    """A rank of a multi-process training run failed (the run is FAILED, nothing registered)."""


@dataclass(frozen=True)
class World:
    """This process's place in the training world.

    ``launch`` is how many local ranks this process must start itself (N-1 for rank 0 of a
    one-node ``ddp`` run it leads, 0 when a launcher such as torchrun started everyone).
    """

    rank: int = 0
    size: int = 1
    launch: int = 0

    @property
    def is_zero(self) -> bool:
        return self.rank == 0


def local_processes(trainer_cfg: Any) -> int:
    """Processes per node that ``trainer.devices`` asks for (``auto``/-1: every GPU, or one
    process on CPU, as Lightning counts them)."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:  # "0,1": a list of device ids
            return len([d for d in text.split(",") if d.strip()])
        devices = -1 if text in ("auto", "-1") else int(text)
    if not isinstance(devices, int):  # a list of device ids
        return len(list(devices))
    if devices == -1:
        import torch

        gpu = str(trainer_cfg.get("accelerator", "cpu")) in ("gpu", "cuda", "auto")
        return max(torch.cuda.device_count(), 1) if gpu and torch.cuda.is_available() else 1
    return int(devices)


def plan(trainer_cfg: Any) -> World:
    """Where this process stands: launched by someone (``RANK``/``WORLD_SIZE`` set), leading
    a one-node ``ddp`` run, or training alone."""
    env = os.environ
    if trainer_cfg.get("strategy") in DDP_STRATEGIES and "RANK" in env and "WORLD_SIZE" in env:
        return World(rank=int(env["RANK"]), size=int(env["WORLD_SIZE"]))
    if trainer_cfg.get("strategy") not in DDP_STRATEGIES:
        return World()
    nodes = int(trainer_cfg.get("num_nodes") or 1)
    per_node = local_processes(trainer_cfg)
    if nodes > 1:
        raise UsageError(
            f"trainer.num_nodes={nodes} needs every node's ranks started by "
            "torchrun (see docs/team/multi-process-training.md)."
        )
    return World(rank=0, size=per_node, launch=per_node - 1)


class NullRun:
    """The run handle of ranks other than 0: accepts everything, records nothing."""

    run_id = ""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("log_") or name == "set_tags":
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def artifact_uri(self, artifact_path: str) -> str:
        return ""


# The port and ranks of the local world this process leads, read by build_trainer (one per
# process: torch.distributed holds a single default process group).
_leading: dict[str, Any] = {}


def before_rendezvous(timeout: float) -> None:
    """Called by every rank right before it joins the process group (the DDP strategy's
    ``setup_distributed``).

    A launched rank says it got this far; rank 0 of a local world waits until every rank
    has, and fails at once if one exited first (bad config, missing data, import error):
    otherwise it would sit in the rendezvous for the whole ``ddp_timeout_seconds``.
    """
    ready = os.environ.get(READY_ENV)
    if ready and "RANK" in os.environ:
        from opsline.training import faults

        faults.before_rendezvous(int(os.environ["RANK"]))
        (Path(ready) / f"rank{os.environ['RANK']}").touch()
        return
    ranks = _leading.get("ranks")
    if ranks is not None:
        ranks.wait_ready(timeout)


def cluster_environment() -> Any:
    """Lightning's view of the world this process leads as rank 0, else None (Lightning
    then reads the environment: our children's variables, or torchrun's)."""
    if "port" not in _leading:
        return None
    from lightning.fabric.plugins.environments import LightningEnvironment

    port = _leading["port"]

    class LeadingEnvironment(LightningEnvironment):
        # Rank 0 of a world whose other ranks opsline started: Lightning must not launch
        # processes of its own, and must not read (or write) this process's environment.
        @property
        def creates_processes_externally(self) -> bool:
            return True

        @property
        def main_address(self) -> str:
            return "127.0.0.1"

        @property
        def main_port(self) -> int:
            return port

        def local_rank(self) -> int:
            return 0

        def node_rank(self) -> int:
            return 0

    return LeadingEnvironment()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalRanks:
    """Ranks 1..N-1 of a one-node run, started by rank 0 (this process) and reaped by it.

    Each child runs in its own session (its own process group, killed as a whole) and writes
    its output to ``<workspace>/logs/ddp/<stamp>-rank<i>.log`` rather than the terminal, so a
    failed rank is one sentence there, with the file to read.
    """

    def __init__(self, world: World, recipe_name: str, overrides: Sequence[str], log_dir: Path):
        self.world = world
        self.command = [sys.executable, "-m", "opsline.training.ddp_rank", recipe_name, *overrides]
        self.log_dir = Path(log_dir)
        self.children: list[tuple[int, subprocess.Popen[bytes], Path]] = []
        self._saved_env: dict[str, str | None] = {}
        self.ready_dir: Path | None = None  # made on __enter__, removed on __exit__

    def __enter__(self) -> Self:
        if self.world.launch == 0:
            return self
        if _leading:
            raise UsageError(
                "A multi-process training already runs in this process; run one at a time."
            )
        try:
            self._start()
        except BaseException:
            self.__exit__()  # no half-started world left behind
            raise
        return self

    def _start(self) -> None:
        port = _free_port()
        _leading.update(port=port, ranks=self)
        # Lightning's dist init writes these into os.environ; put back what was there.
        self._saved_env = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT")}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.ready_dir = Path(tempfile.mkdtemp(prefix=f"{stamp}-ready-", dir=self.log_dir))
        for rank in range(1, self.world.launch + 1):
            env = {
                **os.environ,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                READY_ENV: str(self.ready_dir),
                "WORLD_SIZE": str(self.world.size),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "NODE_RANK": "0",
                "PYTHONUNBUFFERED": "1",
            }
            log_path = self.log_dir / f"{stamp}-rank{rank}.log"
            with open(log_path, "wb") as out:
                child = subprocess.Popen(
                    self.command,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.children.append((rank, child, log_path))

    def wait_ready(self, timeout: float) -> None:
        """Block until every rank is about to join the process group; raise
        :class:`DistributedTrainingError` if one exits before that, or is not there after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        pending = [(rank, child, log) for rank, child, log in self.children]
        while pending:
            for rank, child, log_path in pending:
                code = child.poll()
                if code is not None:
                    raise DistributedTrainingError(
                        f"Training failed before it started: rank {rank} of "
                        f"{self.world.size} exited with code {code} (log: {log_path})."
                    )
            assert self.ready_dir is not None
            pending = [c for c in pending if not (self.ready_dir / f"rank{c[0]}").exists()]
            if pending and time.monotonic() > deadline:
                raise DistributedTrainingError(
                    f"Training failed: rank {pending[0][0]} did not start within "
                    f"{timeout:.0f} s (log: {pending[0][2]})."
                )
            time.sleep(0.1)

    def failure(self, wait: float = 0.0) -> str | None:
        """One sentence naming the first rank that exited non-zero (waiting up to ``wait``
        seconds for one to do so), or None."""
        deadline = time.monotonic() + wait
        while True:
            for rank, child, log_path in self.children:
                code = child.poll()
                if code not in (None, 0):
                    return (
                        f"rank {rank} of {self.world.size} exited with code {code} "
                        f"(log: {log_path})"
                    )
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def join(self, timeout: float) -> None:
        """Wait for every rank to finish; raise :class:`DistributedTrainingError` if one
        failed or is still running after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        for rank, child, log_path in self.children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                raise DistributedTrainingError(
                    f"Training failed: rank {rank} did not finish within {timeout:.0f} s "
                    f"after rank 0 (log: {log_path})."
                ) from None
        failed = self.failure()
        if failed:
            raise DistributedTrainingError(f"Training failed: {failed}.")

    def __exit__(self, *exc: object) -> None:
        if self.world.launch == 0:
            return
        try:
            for _, child, _ in self.children:
                _stop(child)
        finally:
            _leading.clear()
            if self.ready_dir is not None:
                shutil.rmtree(self.ready_dir, ignore_errors=True)
            _destroy_process_group()
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _stop(child: subprocess.Popen[bytes]) -> None:
    """End a rank and everything it started: SIGTERM to its process group, SIGKILL after a
    grace period (a rank blocked in a collective ignores SIGTERM)."""
    if child.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _destroy_process_group() -> None:
    """Leave the finished world, so a later run in this process can build a new one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
