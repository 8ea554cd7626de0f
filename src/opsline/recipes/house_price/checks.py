"""Validation rules for the prepared Ames splits (a pandera schema + cross-split rules).

The core runner (``opsline.data.validation``) applies the schema lazily to every split,
checks ``min_rows`` and that no sale (``pid``) appears in two splits, and formats the report.
"""

from __future__ import annotations

from typing import Any

from opsline.data.validation import Checks
from opsline.recipes.house_price.data import KEY, TARGET
from opsline.recipes.house_price.features import NOMINAL, ORDINAL, RAW_NUMERIC

# Columns where the raw data legitimately has gaps: "NA" codes (no basement, no garage,
# no pool, no fence, no alley ...), the unknown lot frontages, and a handful of single
# missing basement / garage / electrical values. Everything else must be filled in.
NULLABLE = {
    "lot_frontage",
    "alley",
    "mas_vnr_type",
    "mas_vnr_area",
    "bsmt_qual",
    "bsmt_cond",
    "bsmt_exposure",
    "bsmtfin_type_1",
    "bsmtfin_sf_1",
    "bsmtfin_type_2",
    "bsmtfin_sf_2",
    "bsmt_unf_sf",
    "total_bsmt_sf",
    "electrical",
    "bsmt_full_bath",
    "bsmt_half_bath",
    "fireplace_qu",
    "garage_type",
    "garage_yr_blt",
    "garage_finish",
    "garage_cars",
    "garage_area",
    "garage_qual",
    "garage_cond",
    "pool_qc",
    "fence",
    "misc_feature",
}
YEARS = {
    "year_built": (1800, 2011),
    "year_remod_add": (1800, 2011),
    "garage_yr_blt": (1800, 2011),
    "yr_sold": (2006, 2010),
}
SCORES = {"overall_qual": (1, 10), "overall_cond": (1, 10), "mo_sold": (1, 12)}
COUNTS = (
    "bsmt_full_bath",
    "bsmt_half_bath",
    "full_bath",
    "half_bath",
    "bedroom_abvgr",
    "kitchen_abvgr",
    "totrms_abvgrd",
    "fireplaces",
    "garage_cars",
)
# Codes of the best-known categories; others are only checked for being text.
KNOWN_CODES = {
    "neighborhood": [
        "Blmngtn",
        "Blueste",
        "BrDale",
        "BrkSide",
        "ClearCr",
        "CollgCr",
        "Crawfor",
        "Edwards",
        "Gilbert",
        "Greens",
        "GrnHill",
        "IDOTRR",
        "Landmrk",
        "MeadowV",
        "Mitchel",
        "NAmes",
        "NPkVill",
        "NWAmes",
        "NoRidge",
        "NridgHt",
        "OldTown",
        "SWISU",
        "Sawyer",
        "SawyerW",
        "Somerst",
        "StoneBr",
        "Timber",
        "Veenker",
    ],
    "central_air": ["Y", "N"],
    "sale_type": ["WD", "CWD", "VWD", "New", "COD", "Con", "ConLw", "ConLI", "ConLD", "Oth"],
}
DEFAULT_MIN_ROWS = {"train": 1000, "val": 200, "test": 200}


def _numeric_dtype(series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def build_schema(max_living_area: float | None = None) -> Any:
    """The pandera ``DataFrameSchema`` every split must satisfy."""
    import pandera.pandas as pa

    numeric = pa.Check(_numeric_dtype, error="numeric dtype")
    text = pa.Check(
        lambda v: isinstance(v, str) and v == v.strip() and v != "",
        element_wise=True,
        error="non-empty text without surrounding spaces",
    )

    def number(name: str, *checks) -> pa.Column:
        return pa.Column(None, [numeric, *checks], nullable=name in NULLABLE, name=name)

    columns: dict[str, pa.Column] = {
        KEY: pa.Column(None, [numeric, pa.Check.gt(0)], unique=True, name=KEY),
        TARGET: number(TARGET, pa.Check.gt(0, error="sale price must be positive")),
    }
    for name in RAW_NUMERIC:
        if name in YEARS:
            columns[name] = number(name, pa.Check.in_range(*YEARS[name]))
        elif name in SCORES:
            columns[name] = number(name, pa.Check.in_range(*SCORES[name]))
        elif name in COUNTS:
            columns[name] = number(name, pa.Check.in_range(0, 20))
        elif name == "gr_liv_area":
            upper = max_living_area if max_living_area is not None else 100_000
            columns[name] = number(name, pa.Check.gt(0), pa.Check.le(upper))
        else:  # areas, porch sizes, frontage, misc value: sizes are never negative
            columns[name] = number(name, pa.Check.ge(0))
    for name, mapping in ORDINAL.items():
        columns[name] = pa.Column(
            object, pa.Check.isin(list(mapping)), nullable=name in NULLABLE, name=name
        )
    for name in NOMINAL:
        if name == "ms_subclass":  # a numeric building-class code (20, 60, 120 ...)
            columns[name] = number(name, pa.Check.in_range(20, 190))
        elif name in KNOWN_CODES:
            columns[name] = pa.Column(
                object, pa.Check.isin(KNOWN_CODES[name]), nullable=name in NULLABLE, name=name
            )
        else:
            columns[name] = pa.Column(object, text, nullable=name in NULLABLE, name=name)
    garage_after_sale = pa.Check(
        lambda df: df["garage_yr_blt"].isna() | (df["garage_yr_blt"] <= df["yr_sold"] + 1),
        error="garage_yr_blt at most one year after yr_sold",
    )
    return pa.DataFrameSchema(columns, checks=[garage_after_sale], strict=False, name="house_price")


def checks(cfg: Any) -> Checks:
    """Schema, record key and minimum split sizes (``recipe.data.min_rows`` overrides)."""
    data_cfg = cfg.recipe.data
    min_rows = dict(DEFAULT_MIN_ROWS)
    if data_cfg.get("min_rows"):
        min_rows.update({str(k): int(v) for k, v in data_cfg.min_rows.items()})
    return Checks(schema=build_schema(data_cfg.get("max_living_area")), key=KEY, min_rows=min_rows)
