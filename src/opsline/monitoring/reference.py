"""The drift reference: the monitored features of the train split, saved with the model.

At registration :func:`build_reference` samples up to ``recipe.reference_rows`` train rows
(fixed seed), turns them into requests (``recipe.requests_from_frame``), predicts them with
the model being registered and keeps ``recipe.monitored_features(requests, responses)`` —
exactly what the prediction log stores for live traffic, so drift compares like with like.
The frame is written as ``reference.parquet`` into the model directory and is registered
with the model (Parquet, not pickle: the server may read it).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import OpslineError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.recipes.base import Predictor, Recipe

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.parquet"
# Rows per predict call while building the reference (a predictor may ask for fewer).
CHUNK_ROWS = 256


class DriftUnavailableError(OpslineError):
    """No drift verdict can be given (no model, no reference, too few requests); the CLI
    exits 2 with the message, as for other "cannot answer" cases."""

    exit_code = 2


class NoReferenceError(DriftUnavailableError):
    """The model directory has no ``reference.parquet`` (registered before drift detection,
    or the recipe has no monitored features)."""


def normalize_features(frame: pd.DataFrame) -> pd.DataFrame:
    """One dtype per feature column: ``float64`` when every value is a number, else strings.

    Monitored features are scalars (numbers, strings, booleans, ``None``); a column that
    mixes them (or holds booleans) is treated as categorical, as text. Missing values stay
    missing (NaN / ``None``), so Parquet and the drift tests see one type per column.
    """
    import numpy as np
    import pandas as pd

    out = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            numeric = False
        elif column.isna().all():  # no values: nothing says what it is; keep it missing
            out[str(name)] = pd.Series([None] * len(column), index=column.index, dtype=object)
            continue
        elif pd.api.types.is_numeric_dtype(column):
            numeric = True
        else:  # object: look at the values (None and numbers, or strings somewhere)
            numeric = all(
                isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
                for v in column.dropna().tolist()
            )
        if not numeric:
            out[str(name)] = column.map(lambda v: None if _missing(v) else str(v)).astype(object)
        else:
            out[str(name)] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


def _missing(value: Any) -> bool:
    import pandas as pd

    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or value is pd.NA
        or value is pd.NaT
    )


def _predict_in_chunks(predictor: Predictor, requests: Sequence[Any]) -> list[Any]:
    size = max(1, min(CHUNK_ROWS, predictor.max_batch_size or CHUNK_ROWS))
    responses: list[Any] = []
    for start in range(0, len(requests), size):
        responses.extend(predictor.predict(list(requests[start : start + size])))
    return responses


def build_reference(
    recipe: Recipe, predictor: Predictor, frame: pd.DataFrame, seed: int = 0
) -> pd.DataFrame | None:
    """The monitored features of up to ``recipe.reference_rows`` rows of ``frame``.

    Args:
        recipe: the recipe being trained.
        predictor: the trained model (its responses may be monitored features too).
        frame: the train split.
        seed: sampling seed; fixed so a retrain on the same data gets the same reference.

    Returns:
        One row per sampled train row, one column per monitored feature; ``None`` when the
        recipe has no reference (``requests_from_frame`` not implemented) or monitors
        nothing.
    """
    import pandas as pd

    rows = min(len(frame), int(recipe.reference_rows))
    if rows <= 0:
        return None
    sample = frame.sample(n=rows, random_state=seed) if rows < len(frame) else frame
    try:
        requests = recipe.requests_from_frame(sample.reset_index(drop=True))
    except NotImplementedError:
        return None
    responses = _predict_in_chunks(predictor, requests)
    features = recipe.monitored_features(requests, responses)
    reference = pd.DataFrame.from_records(list(features))
    if reference.empty or reference.columns.empty:
        return None
    return normalize_features(reference)


def write_reference(
    recipe: Recipe,
    predictor: Predictor,
    frame: pd.DataFrame,
    model_dir: Path,
    say: Callable[[str], None] | None = None,
) -> Path | None:
    """Build the reference and write it into ``model_dir`` (before registration).

    Never fails the training run: a recipe whose reference cannot be built still registers
    (drift then says the version has no reference), and ``say`` tells the user why.
    """
    try:
        reference = build_reference(recipe, predictor, frame)
    except Exception as error:  # the reference is optional; the trained model is not
        log.warning("Building the drift reference failed", exc_info=True)
        if say is not None:
            say(f"No drift reference: building it failed ({type(error).__name__}: {error}).")
        return None
    if reference is None:
        if say is not None:
            say(f"No drift reference: recipe {recipe.name!r} monitors no features yet.")
        return None
    path = Path(model_dir) / REFERENCE_FILE
    reference.to_parquet(path, index=False)
    if say is not None:
        say(
            f"Drift reference: {len(reference)} train rows, {reference.shape[1]} monitored "
            "features."
        )
    return path


def read_reference(model_dir: Path | str | None, version: str | None = None) -> pd.DataFrame:
    """The reference saved with a model.

    Raises:
        NoReferenceError: the model has none (registered before drift detection).
    """
    import pandas as pd

    path = Path(model_dir) / REFERENCE_FILE if model_dir is not None else None
    if path is None or not path.is_file():
        which = f"model version {version}" if version else f"the model at {model_dir}"
        raise NoReferenceError(
            f"{which} has no drift reference (registered before drift "
            "detection); retrain to add one"
        )
    return normalize_features(pd.read_parquet(path))
