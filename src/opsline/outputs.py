"""Files a command writes on request, so pipeline tools (DVC) can track what a stage made.

``opsline data validate --report-file``, ``opsline train --metrics-file --model-dir`` and
``opsline evaluate --metrics-file`` call these. The JSON is deterministic (sorted keys, no
timestamps): an unchanged result gives unchanged bytes, so DVC sees an unchanged output and
skips the stages downstream of it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from opsline.data.validation import ValidationResult


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (a reader never sees half a file), parents created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def validation_record(result: ValidationResult) -> dict[str, Any]:
    """What validation found: pass/fail, the data version, split sizes and failed checks.

    Thresholds are left out on purpose: tightening ``min_rows`` on data that still passes
    leaves the record, and so everything trained on it, unchanged.
    """
    return {
        "ok": result.ok,
        "data_version": result.data_version,
        "rows": dict(result.rows),
        "failures": [failure.line().strip() for failure in result.failures],
    }


def copy_model(recipe: str, run_id: str, tracking_uri: str | None, dest: Path) -> Path:
    """Copy a run's exported model folder (weights, preprocessing JSON, model card) to
    ``dest``, replacing what was there; ``opsline evaluate --model DEST`` loads it."""
    from opsline.tracking.registry import resolve_model

    source = resolve_model(recipe, f"runs:/{run_id}/model", tracking_uri).local_dir
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest)
    return dest
