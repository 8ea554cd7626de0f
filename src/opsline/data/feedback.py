"""Labelled production rows into the next dataset (``data.include_feedback=true``).

The prediction log keeps each request (for recipes that log their request bodies) and
``POST /feedback`` its true outcome. :func:`add_feedback_rows` turns those pairs into rows
shaped like the prepared splits (:meth:`Recipe.feedback_frame`) and deals them to train,
val and test by a stable hash of the request id, with the recipe's own split fractions:

* the same feedback always lands in the same split, so re-preparing is reproducible and
  the content hash (the data version) changes only when the feedback does;
* the test split holds production rows too, so the promotion gate judges a retrained model
  on the world it will serve, not only on the one it was first trained on.

The rows then go through the same validation as the rest (``opsline data validate``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from omegaconf import DictConfig

    from opsline.recipes.base import Recipe


def split_of(request_id: str, val_fraction: float, test_fraction: float) -> str:
    """``train`` / ``val`` / ``test`` for a request id: a uniform draw from its SHA-1."""
    draw = int.from_bytes(hashlib.sha1(request_id.encode()).digest()[:8], "big") / 2**64
    if draw < test_fraction:
        return "test"
    if draw < test_fraction + val_fraction:
        return "val"
    return "train"


def feedback_rows(
    recipe: Recipe, model_name: str, uri: str | None = None
) -> tuple[list[str], pd.DataFrame | None]:
    """Request ids and prepared-split rows of every labelled prediction of ``model_name``
    (the served model's rows, not a shadow's; one row per request id, newest feedback)."""
    import orjson

    from opsline.monitoring.prediction_log import PredictionLog

    log = PredictionLog.open(uri)
    try:
        labelled = log.labelled(model_name)
    finally:
        log.close()
    latest: dict[str, str] = {}  # request id → its request's JSON
    actuals: dict[str, Any] = {}
    for row in labelled:  # a reused request id: the newest prediction with it wins
        body = row.features if recipe.request_in_features else row.request
        if body is not None:
            latest[row.request_id], actuals[row.request_id] = body, row.actual
    if not latest:
        return [], None
    ids = list(latest)
    requests = [orjson.loads(latest[i]) for i in ids]
    return ids, recipe.feedback_frame(requests, [actuals[i] for i in ids])


def add_feedback_rows(
    recipe: Recipe, cfg: DictConfig, splits: dict[str, pd.DataFrame], uri: str | None = None
) -> tuple[dict[str, pd.DataFrame], int]:
    """``splits`` with the labelled production rows dealt into train/val/test; and how many."""
    import pandas as pd

    ids, frame = feedback_rows(recipe, recipe.model_name(cfg), uri)
    if frame is None or frame.empty:
        return splits, 0
    data_cfg = cfg.recipe.get("data") or {}
    val = float(data_cfg.get("val_fraction", 0.15))
    test = float(data_cfg.get("test_fraction", 0.15))
    assignment = [split_of(i, val, test) for i in ids]
    out = dict(splits)
    for name in ("train", "val", "test"):
        picked = frame[[a == name for a in assignment]]
        if len(picked):
            out[name] = pd.concat(
                [splits[name], picked.astype(splits[name].dtypes.to_dict())], ignore_index=True
            )
    return out, len(frame)
