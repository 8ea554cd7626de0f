"""Resolve the data paths users type in configs and on the command line (shared by recipes)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from opsline.errors import NoDatasetError, UsageError


def resolve_path(path: str | os.PathLike[str], what: str = "data file") -> Path:
    """``path`` as given, else relative to the current directory, else to the project root.

    Relative paths are tried against the current directory first (what a user typing a
    command means) and then against the directory holding ``configs/`` (so the smoke
    overrides work from any directory of the checkout).

    Raises:
        NoDatasetError: nothing exists at any of the places tried (all of them are named).
    """
    from opsline.config import config_dir

    candidate = Path(path).expanduser()
    tried = [candidate if candidate.is_absolute() else Path.cwd() / candidate]
    if not candidate.is_absolute():
        with contextlib.suppress(UsageError):  # no configs at all: only the cwd is tried
            tried.append(config_dir().resolve().parent / candidate)
    for option in tried:
        if option.exists():
            return option.resolve()
    raise NoDatasetError(
        f"The {what} {str(path)!r} does not exist (looked in {', '.join(str(t) for t in tried)})."
    )
