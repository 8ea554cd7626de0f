"""Start, find and stop the stack's servers: one process group each, pids in the stack dir.

Each server runs in its own session (``setsid``) so its pid is also its process-group id:
stopping the group takes every child with it (PostgreSQL backends, uvicorn workers), and
the servers outlive the ``opsline stack up`` that started them. ``run/<name>.json`` records
pid and command so ``stack down`` and ``status`` find them later, and a reused pid (another
program) is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opsline.errors import OpslineError

# Servers started by this process, kept so they are reaped (no zombies, no ResourceWarning)
# when a long-lived caller such as a test session stops them.
_children: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Service:
    """A server of the stack: its name for people, its log and its pid record."""

    name: str  # e.g. "PostgreSQL"
    key: str  # file stem: postgres, s3, mlflow
    stack_dir: Path

    @property
    def log(self) -> Path:
        return self.stack_dir / "logs" / f"{self.key}.log"

    @property
    def record(self) -> Path:
        return self.stack_dir / "run" / f"{self.key}.json"


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (a bind would fail).

    Raises:
        OpslineError: ``host`` is not an address of this machine, or the port is privileged.
    """
    import errno

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            raise OpslineError(
                f"Cannot listen on {host}:{port} ({error.strerror}); set host "
                f"and the ports in the stack config to ones this machine "
                f"allows."
            ) from None
    return False


def start(
    service: Service, cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start ``cmd`` detached in its own session, output appended to the service's log."""
    service.log.parent.mkdir(parents=True, exist_ok=True)
    service.record.parent.mkdir(parents=True, exist_ok=True)
    with service.log.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )
        except OSError as error:
            raise OpslineError(
                f"{service.name} could not be started ({error.strerror}: "
                f"{cmd[0]}); see {service.log}."
            ) from None
    _children[proc.pid] = proc
    service.record.write_text(
        json.dumps({"pid": proc.pid, "cmd": list(cmd), "ticks": _start_ticks(proc.pid)})
    )
    return proc.pid


def pid_of(service: Service) -> int | None:
    """The pid of the service's running server, or ``None`` (no record, or it has ended)."""
    try:
        record = json.loads(service.record.read_text())
        pid = int(record["pid"])
    except (OSError, ValueError, KeyError):
        return None
    # A pid reused by another program has another start time: never ours.
    ticks = _start_ticks(pid)
    return pid if ticks is not None and ticks == record.get("ticks") else None


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot); ``None`` if gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is the state (Z: exited, waiting to be reaped); starttime is field 22 of
    # stat, i.e. index 19 after the command name.
    return None if fields[0] == "Z" else int(fields[19])


def group_members(pgid: int) -> list[int]:
    """Live pids in process group ``pgid`` (from /proc: no ps needed)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop(service: Service, sig: int = signal.SIGTERM, grace: float = 15.0) -> bool:
    """Signal the server, wait ``grace`` seconds for its whole group, then SIGKILL the rest.

    Returns whether a server was running. The record is removed either way.
    """
    pid = pid_of(service)
    if pid is None:
        service.record.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)  # the leader first: servers shut their children down in order
    deadline = time.monotonic() + grace
    while group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_members(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    service.record.unlink(missing_ok=True)
    if pid in _children:
        _children.pop(pid).poll()
    return True


def wait_healthy(service: Service, pid: int, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` until it passes; the server exiting or the timeout is one sentence."""
    deadline = time.monotonic() + timeout
    while True:
        if pid_of(service) != pid:
            code = _exit_code(pid)
            raise OpslineError(f"{service.name} failed to start{code}; see its log {service.log}.")
        if check():
            return
        if time.monotonic() > deadline:
            raise OpslineError(
                f"{service.name} did not become healthy within {timeout:.0f} s;"
                f" see its log {service.log}."
            )
        time.sleep(0.25)


def _exit_code(pid: int) -> str:
    # We are its parent when `stack up` started it in this process: reap it for the code.
    proc = _children.pop(pid, None)
    code = proc.poll() if proc else None
    return "" if code is None else f" (exit code {code})"
