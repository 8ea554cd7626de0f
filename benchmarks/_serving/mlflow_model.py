"""The comparison users would reach for: a scikit-learn Pipeline logged with MLflow.

``ColumnTransformer`` over the same raw columns as opsline's house_price preprocessing
(``features.RAW_COLUMNS``): numbers -> median imputation; quality words -> ``"NA"`` then
``OrdinalEncoder`` in their quality order; other categories -> ``"NA"`` then
``OneHotEncoder`` (levels rarer than 5 rows grouped). Then ``lightgbm.LGBMRegressor`` on the
log price with opsline's GBM hyper-parameters and as many trees as opsline's production
model, so both servers walk forests of the same size. Logged with ``mlflow.sklearn.log_model``
(skops serialization, the LightGBM / numpy types it does not know listed as trusted) into a
tracking store of its own under the workspace, and served with ``mlflow models serve``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from opsline.recipes.house_price.features import NOMINAL, ORDINAL, RAW_COLUMNS, RAW_NUMERIC

GBM_PARAMS = {
    "learning_rate": 0.02,
    "num_leaves": 15,
    "min_child_samples": 10,
    "subsample": 0.7,
    "subsample_freq": 1,
    "colsample_bytree": 0.5,
    "reg_lambda": 1.0,
    "verbose": -1,
}


def raw_frame(frame: Any) -> Any:
    """The model's input frame: numbers as float64, categories as text (NaN if missing)."""
    import numpy as np

    out = frame.reindex(columns=RAW_COLUMNS).copy()
    out[RAW_NUMERIC] = out[RAW_NUMERIC].astype("float64")
    for column in [*ORDINAL, *NOMINAL]:
        out[column] = (
            out[column]
            .map(
                lambda v: (
                    np.nan
                    if v is None or (isinstance(v, float) and math.isnan(v))
                    else (str(int(v)) if isinstance(v, (int, float)) else str(v))
                )
            )
            .astype(object)
        )
    return out


def full_record(defaults: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """The request's house with every raw column spelled out (MLflow enforces the signature):
    given fields as sent, the rest the train medians / modes opsline imputes."""
    record = {}
    for column in RAW_COLUMNS:
        value = request.get(column, defaults.get(column))
        if column in RAW_NUMERIC:
            record[column] = float(value)
        else:
            record[column] = (
                "NA"
                if value is None
                else (str(int(value)) if isinstance(value, (int, float)) else str(value))
            )
    return record


def pipeline(n_estimators: int) -> Any:
    from lightgbm import LGBMRegressor
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    ordinal_levels = [["NA", *sorted(levels, key=levels.get)] for levels in ORDINAL.values()]
    features = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), RAW_NUMERIC),
            (
                "ordinal",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="NA"),
                    OrdinalEncoder(
                        categories=ordinal_levels,
                        handle_unknown="use_encoded_value",
                        unknown_value=-1,
                    ),
                ),
                list(ORDINAL),
            ),
            (
                "nominal",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="NA"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False
                    ),
                ),
                NOMINAL,
            ),
        ]
    )
    return Pipeline(
        [("features", features), ("model", LGBMRegressor(n_estimators=n_estimators, **GBM_PARAMS))]
    )


def build(home: Path, model_dir: Path, request: dict[str, Any], say=print) -> dict[str, str]:
    """Train + log the pipeline once per workspace; ``{"uri", "tracking_uri"}`` to serve it.

    Reused from ``home/bench_mlflow/model.json`` when it exists.
    """
    root = home / "bench_mlflow"
    info_path = root / "model.json"
    if info_path.is_file():
        return json.loads(info_path.read_text())
    import lightgbm
    import mlflow
    import numpy as np
    import pandas as pd
    import sklearn
    import skops.io
    from mlflow.models import infer_signature

    from opsline.recipes.house_price.features import Preprocessor

    root.mkdir(parents=True, exist_ok=True)
    data = home / "data" / "house_price"
    train = pd.read_parquet(data / "train.parquet")
    test = pd.read_parquet(data / "test.parquet")
    trees = sum(line.startswith("Tree=") for line in (model_dir / "model.txt").open())
    say(f"MLflow comparison: fitting sklearn Pipeline + LGBMRegressor ({trees} trees) ...")
    pipe = pipeline(trees)
    pipe.fit(raw_frame(train), np.log(train["sale_price"].to_numpy()))
    test_pred = np.exp(pipe.predict(raw_frame(test)))
    rmsle = float(np.sqrt(np.mean((np.log1p(test_pred) - np.log1p(test["sale_price"])) ** 2)))
    example = pd.DataFrame([full_record(Preprocessor.load(model_dir).defaults, request)])
    signature = infer_signature(example, pipe.predict(example))
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipe))
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment(
        "serving-benchmark", artifact_location=(root / "artifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_metric("test_rmsle", rmsle)
        logged = mlflow.sklearn.log_model(
            pipe,
            name="model",
            signature=signature,
            input_example=example,
            serialization_format="skops",
            skops_trusted_types=trusted,
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"scikit-learn=={sklearn.__version__}",
                f"lightgbm=={lightgbm.__version__}",
            ],
        )
    info = {
        "uri": logged.model_uri,
        "tracking_uri": tracking_uri,
        "trees": trees,
        "test_rmsle": rmsle,
        "trusted_types": trusted,
    }
    info_path.write_text(json.dumps(info, indent=1))
    return info
