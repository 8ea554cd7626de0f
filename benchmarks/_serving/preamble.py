"""The start every serving benchmark's ``main()`` shares: wrk present, a ``say`` that prints
at once, the machine described before any load, the workspace in ``OPSLINE_HOME``, and a
scratch directory for server logs and wrk scripts; plus the command line for the report."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _serving import report, wrk


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Run:
    """What a benchmark run knows before it starts a server."""

    started: float  # unix time
    machine: dict[str, Any]  # report.machine_state() before any load
    home: Path  # OPSLINE_HOME (also exported for this process)
    workdir: Path  # server logs, wrk scripts, this run's prediction log
    say: Callable[[str], None] = say


def begin(home: Path | None, name: str) -> Run:
    """Check wrk, describe the machine, export ``OPSLINE_HOME`` (``home`` or a new temp dir
    named after the benchmark) and make the scratch directory."""
    wrk.check_wrk()
    started = time.time()
    machine = report.machine_state()
    home = (home or Path(tempfile.mkdtemp(prefix=f"opsline-{name}-"))).resolve()
    os.environ["OPSLINE_HOME"] = str(home)
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    say(f"Workspace {home}; server logs and wrk scripts in {workdir}")
    return Run(started=started, machine=machine, home=home, workdir=workdir)


def command_line() -> str:
    """How this process was started, relative paths, for the report's rerun line."""
    return shlex.join(
        [os.path.relpath(sys.executable), os.path.relpath(sys.argv[0]), *sys.argv[1:]]
    )
