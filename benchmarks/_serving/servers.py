"""Start servers pinned to a CPU, wait until they answer, and always kill them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """(status, body) of one request; connection errors raise ``OSError``."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_json(url: str, payload: Any) -> Any:
    status, body = http("POST", url, json.dumps(payload).encode())
    if status != 200:
        raise RuntimeError(f"POST {url} answered {status}: {body[:500]!r}")
    return json.loads(body)


class Servers:
    """Every process started here lives in its own session and is killed by :meth:`stop`
    (or :meth:`stop_all`, which ``serving_tabular.py`` calls in ``finally``)."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        ready_url: str,
        cpu: str | None = "0",
        timeout_s: float = 180,
    ) -> subprocess.Popen:
        """Run ``cmd`` (under ``taskset -c cpu``), wait for ``ready_url`` to answer 200."""
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]
        log_path = self.logdir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child holds its own descriptor
        self.procs[name] = proc
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode} before it was ready; "
                    f"log {log_path}:\n{_tail(log_path)}"
                )
            try:
                if http("GET", ready_url, timeout=2)[0] == 200:
                    return proc
            except OSError:
                pass
            time.sleep(0.3)
        self.stop(name)
        raise RuntimeError(
            f"{name} was not ready within {timeout_s:.0f} s; log {log_path}:\n{_tail(log_path)}"
        )

    def stop(self, name: str) -> None:
        """SIGTERM the server's process group, SIGKILL it after 10 s."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                # The group may outlive its leader (mlflow's uvicorn child): kill the rest.
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
            break

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cpu_snapshot() -> dict[int, tuple[int, int, str]]:
    """pid -> (utime + stime ticks, process group, name) of every process now."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.find("(") + 1 : raw.rfind(")")]
        fields = raw[raw.rfind(")") + 2 :].split()
        # after the name: state ppid pgrp session ... utime (14th field) stime (15th)
        out[int(entry.name)] = (int(fields[11]) + int(fields[12]), int(fields[2]), name)
    return out


def other_cpu(before: dict, after: dict, seconds: float, exclude_groups: set[int]) -> float:
    """Cores used meanwhile by processes other than ours (the server's group, wrk, us)."""
    me = os.getpid()
    ticks = 0
    for pid, (t, group, name) in after.items():
        if pid == me or group in exclude_groups or name == "wrk":
            continue
        ticks += t - before.get(pid, (0,))[0]
    return ticks / os.sysconf("SC_CLK_TCK") / max(seconds, 1e-9)
