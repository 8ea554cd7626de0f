"""The ``opsline`` command as a user runs it: a subprocess on one workspace, output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def opsline(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m opsline ARGS`` with ``OPSLINE_HOME=home`` (the rest of the environment,
    e.g. a test's own ``OPSLINE_PREDICTION_LOG_URI``, is inherited); never raises on exit."""
    return subprocess.run(
        [sys.executable, "-m", "opsline", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OPSLINE_HOME": str(home)},
        timeout=timeout,
        check=False,
    )
