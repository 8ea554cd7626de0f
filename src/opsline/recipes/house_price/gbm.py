"""Train the LightGBM baseline on log price; export as LightGBM's text model + JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.config import settings
from opsline.recipes.base import TrainedModel
from opsline.recipes.house_price.card import WEIGHTS, write_card
from opsline.recipes.house_price.config import GBMConfig
from opsline.recipes.house_price.data import TARGET
from opsline.recipes.house_price.features import RAW_COLUMNS, Preprocessor
from opsline.training.fit import FitResult, Stopwatch

if TYPE_CHECKING:  # pragma: no cover
    from opsline.tracking.runs import TrainingRun

# Log the validation curve every this many boosting rounds (thousands of points is noise).
LOG_EVERY = 25


def booster_params(model_cfg: GBMConfig, seed: int) -> dict[str, Any]:
    """LightGBM parameters from ``model.params`` (sklearn-style aliases are accepted)."""
    params = dict(model_cfg.params)
    params.setdefault("objective", "regression")
    params.update(
        {
            "metric": "rmse",
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            "num_threads": model_cfg.num_threads,
        }
    )
    return params


def train_gbm(cfg: Any, dataset: Any, run: TrainingRun, out_dir: Path) -> TrainedModel:
    """Fit preprocessing on train, boost with early stopping on val, export."""
    import lightgbm as lgb
    import numpy as np

    mcfg = settings(GBMConfig, cfg.model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, val = dataset.frame("train"), dataset.frame("val")
    pre = Preprocessor.fit(train)
    train_set = lgb.Dataset(
        pre.gbm_frame(train), np.log(train[TARGET].to_numpy(float)), free_raw_data=False
    )
    val_set = lgb.Dataset(
        pre.gbm_frame(val), np.log(val[TARGET].to_numpy(float)), reference=train_set
    )
    history: dict[str, Any] = {}
    max_rounds = mcfg.n_estimators
    if cfg.trainer.get("fast_dev_run"):
        max_rounds = min(max_rounds, 10)  # a smoke run, as for the Lightning models
    clock = Stopwatch()
    booster = lgb.train(
        booster_params(mcfg, int(cfg.get("seed", 42))),
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[train_set, val_set],
        valid_names=["train", "val"],
        callbacks=[
            lgb.early_stopping(mcfg.early_stopping_rounds, verbose=False),
            lgb.record_evaluation(history),
        ],
    )
    result = FitResult(seconds=clock.seconds, cpu_seconds=clock.cpu_seconds)
    # The target is log(price), so the rmse LightGBM reports is the RMSLE.
    val_curve, train_curve = history["val"]["rmse"], history["train"]["rmse"]
    for i in range(0, len(val_curve), LOG_EVERY):
        run.log_metrics({"train_rmsle": train_curve[i], "val_rmsle": val_curve[i]}, step=i + 1)
    best = int(booster.best_iteration or len(val_curve))
    best_val = val_curve[best - 1] if best - 1 < len(val_curve) else math.nan
    run.log_metrics(result.metrics(best_iteration=best, best_val_rmsle=best_val))
    booster.save_model(str(out_dir / WEIGHTS["gbm"]), num_iteration=best)
    pre.save(out_dir)
    write_card(
        out_dir,
        "gbm",
        feature_schema={"raw_columns": RAW_COLUMNS, "model_inputs": list(booster.feature_name())},
        target={"column": TARGET, "transform": "log"},
        data_version=getattr(dataset, "version", None),
        training=result.card(best_iteration=best),
    )
    return TrainedModel(model_dir=out_dir, kind="gbm")
