"""Is a process still there? Shared by the job manager and the sweep runner's stale-trial check."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process whose command line contains ``marker``.

    On Linux the command line is checked too, so a pid reused by an unrelated process after
    a crash is not mistaken for ours (and never signalled). A zombie (killed, not yet reaped)
    counts as dead.
    """
    if not pid:
        return False
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self/stat").exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            return False
        if state in ("Z", "X"):
            return False
        return marker is None or marker.encode() in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
