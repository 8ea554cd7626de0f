"""What every serving benchmark's command line shares: CPUs, the quiet-machine gate, outputs,
and a SIGTERM that unwinds like Ctrl-C (so ``finally`` kills the servers)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path


def add_common_args(p: argparse.ArgumentParser, report: Path, *, wait: bool = True) -> None:
    """``--server-cpu``, ``--client-cpu``, [``--wait-for``, ``--wait-timeout``], ``--out``,
    ``--json``; ``report`` is the default markdown file."""
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--client-cpu", default="1")
    if wait:
        p.add_argument(
            "--wait-for",
            type=Path,
            help="measure only once this file exists and no pytest process runs",
        )
        p.add_argument(
            "--wait-timeout",
            type=float,
            default=2700,
            help="seconds to wait for quiet, then measure anyway (flagged) (2700)",
        )
    p.add_argument("--out", type=Path, default=report, help="markdown report ('-' = do not write)")
    p.add_argument("--json", type=Path, help="also dump the result as JSON here")


def ints(text: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``."""
    return [int(c) for c in text.split(",") if c.strip()]


def names(text: str) -> list[str]:
    """``"onnx, native"`` -> ``["onnx", "native"]``."""
    return [n.strip() for n in text.split(",") if n.strip()]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stop_like_ctrl_c() -> None:
    """``kill`` / a CI timeout stops the run like Ctrl-C does. Call after the heavy imports:
    one of them (mlflow / opsline) installs its own handlers."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
