"""Feature engineering and preprocessing, fitted on the train split and stored as JSON.

One :class:`Preprocessor` serves both model kinds, so training, evaluation and serving
share one code path:

* ``complete(records)``: request dicts -> raw rows; every column a request leaves out gets
  the train median (numbers) or the train mode (categories, "NA" counted as a level).
* ``base_frame(df)``: engineered features (total SF, ages, baths, quality x area ...),
  train-median imputation, quality words -> ordinal numbers, missing categories -> "NA".
* ``matrix(df)`` (MLP): log1p of skewed areas, standardization, one-hot of nominal columns.
* ``gbm_frame(df)`` (GBM): numbers plus pandas categoricals with the train categories.

Everything fitted (medians, modes, means, stds, category lists, target scale) comes from the
train split only and round-trips through ``preprocessing.json`` — no pickle.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

PREPROCESSING_FILE = "preprocessing.json"
FORMAT = "opsline.house_price.preprocessing/v1"
NONE_LEVEL = "NA"  # Ames codes "no basement / no garage / no pool ..." as a missing value
# Categories rarer than this in train get no one-hot column (too few rows to learn from).
MIN_CATEGORY_COUNT = 5

RAW_NUMERIC = [
    "lot_frontage",
    "lot_area",
    "overall_qual",
    "overall_cond",
    "year_built",
    "year_remod_add",
    "mas_vnr_area",
    "bsmtfin_sf_1",
    "bsmtfin_sf_2",
    "bsmt_unf_sf",
    "total_bsmt_sf",
    "first_flr_sf",
    "second_flr_sf",
    "low_qual_fin_sf",
    "gr_liv_area",
    "bsmt_full_bath",
    "bsmt_half_bath",
    "full_bath",
    "half_bath",
    "bedroom_abvgr",
    "kitchen_abvgr",
    "totrms_abvgrd",
    "fireplaces",
    "garage_yr_blt",
    "garage_cars",
    "garage_area",
    "wood_deck_sf",
    "open_porch_sf",
    "enclosed_porch",
    "three_ssn_porch",
    "screen_porch",
    "pool_area",
    "misc_val",
    "mo_sold",
    "yr_sold",
]
_QUALITY = {"Ex": 5, "Gd": 4, "TA": 3, "Fa": 2, "Po": 1}
ORDINAL: dict[str, dict[str, int]] = {
    **dict.fromkeys(
        (
            "exter_qual",
            "exter_cond",
            "bsmt_qual",
            "bsmt_cond",
            "heating_qc",
            "kitchen_qual",
            "fireplace_qu",
            "garage_qual",
            "garage_cond",
            "pool_qc",
        ),
        _QUALITY,
    ),
    "bsmt_exposure": {"Gd": 4, "Av": 3, "Mn": 2, "No": 1},
    "bsmtfin_type_1": {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1},
    "bsmtfin_type_2": {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1},
    "garage_finish": {"Fin": 3, "RFn": 2, "Unf": 1},
    "functional": {
        "Typ": 7,
        "Min1": 6,
        "Min2": 5,
        "Mod": 4,
        "Maj1": 3,
        "Maj2": 2,
        "Sev": 1,
        "Sal": 0,
    },
}
NOMINAL = [
    "ms_subclass",
    "ms_zoning",
    "street",
    "alley",
    "lot_shape",
    "land_contour",
    "utilities",
    "lot_config",
    "land_slope",
    "neighborhood",
    "condition_1",
    "condition_2",
    "bldg_type",
    "house_style",
    "roof_style",
    "roof_matl",
    "exterior_1st",
    "exterior_2nd",
    "mas_vnr_type",
    "foundation",
    "heating",
    "central_air",
    "electrical",
    "garage_type",
    "paved_drive",
    "fence",
    "misc_feature",
    "sale_type",
    "sale_condition",
]
ENGINEERED = [
    "total_sf",
    "age",
    "remod_age",
    "total_bath",
    "qual_x_area",
    "porch_sf",
    "garage_age",
    "has_second_floor",
]
# Right-skewed sizes whose log is closer to linear in log(price).
LOG1P = [
    "lot_frontage",
    "lot_area",
    "mas_vnr_area",
    "bsmtfin_sf_1",
    "bsmtfin_sf_2",
    "bsmt_unf_sf",
    "total_bsmt_sf",
    "first_flr_sf",
    "second_flr_sf",
    "low_qual_fin_sf",
    "gr_liv_area",
    "garage_area",
    "wood_deck_sf",
    "open_porch_sf",
    "enclosed_porch",
    "three_ssn_porch",
    "screen_porch",
    "pool_area",
    "misc_val",
    "total_sf",
    "qual_x_area",
    "porch_sf",
]
RAW_COLUMNS = RAW_NUMERIC + list(ORDINAL) + NOMINAL
NUMERIC_FEATURES = RAW_NUMERIC + list(ORDINAL) + ENGINEERED


def engineer(frame: pd.DataFrame) -> pd.DataFrame:
    """Add derived features (works row by row, so train and serving agree)."""
    out = frame.copy()
    out["total_sf"] = out["total_bsmt_sf"] + out["gr_liv_area"]
    out["age"] = (out["yr_sold"] - out["year_built"]).clip(lower=0)
    out["remod_age"] = (out["yr_sold"] - out["year_remod_add"]).clip(lower=0)
    out["total_bath"] = (
        out["full_bath"]
        + 0.5 * out["half_bath"]
        + out["bsmt_full_bath"]
        + 0.5 * out["bsmt_half_bath"]
    )
    out["qual_x_area"] = out["overall_qual"] * out["gr_liv_area"]
    out["porch_sf"] = out[
        ["wood_deck_sf", "open_porch_sf", "enclosed_porch", "three_ssn_porch", "screen_porch"]
    ].sum(axis=1)
    out["garage_age"] = (out["yr_sold"] - out["garage_yr_blt"]).clip(lower=0)
    out["has_second_floor"] = (out["second_flr_sf"] > 0).astype(float)
    return out


def _json_number(value: Any) -> Any:
    """numpy scalars -> plain Python (JSON) numbers; ints stay ints."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


@dataclass
class Preprocessor:
    """Everything fitted on train that turns raw rows into model inputs."""

    defaults: dict[str, Any]
    medians: dict[str, float]
    nominal: dict[str, list[str]]
    gbm_nominal: dict[str, list[str]]
    means: dict[str, float]
    stds: dict[str, float]
    target_mean: float
    target_std: float
    features: list[str] = field(default_factory=list)
    format: str = FORMAT

    # -- fitting / persistence -------------------------------------------------------
    @classmethod
    def fit(cls, train: pd.DataFrame) -> Preprocessor:
        """Fit on the train split only."""
        import numpy as np

        raw = train[RAW_COLUMNS]
        defaults: dict[str, Any] = {c: _json_number(raw[c].median()) for c in RAW_NUMERIC}
        for column in list(ORDINAL) + NOMINAL:
            values = _as_text(raw[column]).fillna(NONE_LEVEL)
            defaults[column] = values.value_counts().sort_index().idxmax()
        engineered = engineer(_categorical_text(raw))
        medians = {c: float(engineered[c].median()) for c in RAW_NUMERIC + ENGINEERED}
        # Category lists: every train level for LightGBM, frequent levels for one-hot.
        gbm_nominal, nominal = {}, {}
        for column in NOMINAL:
            counts = _as_text(raw[column]).fillna(NONE_LEVEL).value_counts()
            gbm_nominal[column] = sorted(counts.index)
            nominal[column] = sorted(counts[counts >= MIN_CATEGORY_COUNT].index)
        pre = cls(defaults, medians, nominal, gbm_nominal, {}, {}, 0.0, 1.0)
        numeric = pre._scaled_numeric(pre.base_frame(train), standardize=False)
        pre.means = {c: float(numeric[c].mean()) for c in NUMERIC_FEATURES}
        pre.stds = {c: float(numeric[c].std()) or 1.0 for c in NUMERIC_FEATURES}
        pre.features = NUMERIC_FEATURES + [f"{c}={v}" for c in NOMINAL for v in nominal[c]]
        log_price = np.log(train["sale_price"].to_numpy(dtype=float))
        pre.target_mean, pre.target_std = float(log_price.mean()), float(log_price.std())
        return pre

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"unsupported preprocessing format {data.get('format')!r}, expected {FORMAT!r}"
            )
        return cls(**data)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / PREPROCESSING_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: Path) -> Preprocessor:
        return cls.from_dict(json.loads((Path(directory) / PREPROCESSING_FILE).read_text()))

    # -- transforming ----------------------------------------------------------------
    def complete(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """Raw rows from partial records: absent or None fields get the train defaults."""
        import pandas as pd

        rows = [{**self.defaults, **{k: v for k, v in r.items() if v is not None}} for r in records]
        return pd.DataFrame(rows, columns=RAW_COLUMNS)

    def base_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Numeric features (imputed) and nominal columns as text, in a fixed order."""
        import pandas as pd

        raw = frame.reindex(columns=RAW_COLUMNS)
        raw = _categorical_text(raw)
        for column in RAW_NUMERIC:
            raw[column] = pd.to_numeric(raw[column], errors="coerce").astype(float)
        raw[RAW_NUMERIC] = raw[RAW_NUMERIC].fillna(self.medians)
        out = engineer(raw)
        out[ENGINEERED] = out[ENGINEERED].fillna({c: self.medians[c] for c in ENGINEERED})
        for column, mapping in ORDINAL.items():
            out[column] = out[column].map(mapping).fillna(0).astype(float)
        return out[NUMERIC_FEATURES + NOMINAL]

    def _scaled_numeric(self, base: pd.DataFrame, standardize: bool = True) -> pd.DataFrame:
        import numpy as np

        numeric = base[NUMERIC_FEATURES].copy()
        numeric[LOG1P] = np.log1p(numeric[LOG1P].clip(lower=0))
        if standardize:
            # Plain arrays in NUMERIC_FEATURES order: pandas would align (and reorder)
            # columns by label, and the JSON file stores the dicts sorted.
            mean = np.array([self.means[c] for c in NUMERIC_FEATURES])
            std = np.array([self.stds[c] for c in NUMERIC_FEATURES])
            numeric = (numeric - mean) / std
        return numeric

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """MLP input: standardized numbers then one-hot nominal columns (float32)."""
        import numpy as np

        base = self.base_frame(frame)
        parts = [self._scaled_numeric(base).to_numpy(dtype=np.float32)]
        for column in NOMINAL:
            levels = self.nominal[column]
            if levels:
                values = base[column].to_numpy()
                parts.append(
                    (values[:, None] == np.asarray(levels, dtype=object)[None, :]).astype(
                        np.float32
                    )
                )
        return np.nan_to_num(np.concatenate(parts, axis=1), nan=0.0, posinf=0.0, neginf=0.0)

    def gbm_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """LightGBM input: numbers plus categoricals with the train categories."""
        import pandas as pd

        base = self.base_frame(frame)
        for column in NOMINAL:
            base[column] = pd.Categorical(base[column], categories=self.gbm_nominal[column])
        return base

    # -- target ----------------------------------------------------------------------
    def encode_target(self, price: np.ndarray) -> np.ndarray:
        """Price -> standardized log price (the MLP's regression target)."""
        import numpy as np

        return (np.log(np.asarray(price, dtype=float)) - self.target_mean) / self.target_std

    def decode_target(self, z: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.exp(np.asarray(z, dtype=float) * self.target_std + self.target_mean)


def _as_text(series: pd.Series) -> pd.Series:
    """Category codes as strings (``ms_subclass`` is numeric in the raw data)."""
    return series.map(
        lambda v: (
            v
            if v is None or (isinstance(v, float) and math.isnan(v))
            else (
                str(int(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
            )
        ),
        na_action="ignore",
    )


def _categorical_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in list(ORDINAL) + NOMINAL:
        out[column] = _as_text(out[column]).fillna(NONE_LEVEL).astype(object)
    return out
