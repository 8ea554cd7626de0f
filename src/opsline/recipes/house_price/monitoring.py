"""Monitoring hooks of the house-price recipe: drift features, live quality, feedback rows.

* :func:`monitored_features` — every request field as it was sent (numbers as floats,
  codes as strings, fields the client left out as ``None``): the drift report then speaks
  the appraiser's language (``gr_liv_area`` moved), and a field clients stop sending shows
  up as a growing share of ``None``. Runs once per served batch, so it is plain Python.
* :func:`requests_from_frame` — prepared rows as requests, for the drift reference.
* :func:`live_quality` — ``rmsle`` and ``within_10pct`` of logged predictions against the
  sale prices reported back, computed by the same function ``evaluate`` uses.
* :func:`feedback_frame` — logged requests plus their sale prices as rows shaped like the
  prepared train split, so ``data.include_feedback=true`` can learn from them.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsline.recipes.house_price.data import KEY, TARGET
from opsline.recipes.house_price.schemas import HousePriceRequest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.recipes.base import Scalar

LIVE_METRICS = ("rmsle", "within_10pct")
# Ames parcel ids (PID) have at most 10 digits: keys from here on can never collide with a
# real sale, in this data or in any later Ames export.
FEEDBACK_KEY_BASE = 10_000_000_000
# The code meaning "none" (no basement, no garage); the prepared data stores it as missing.
NONE_CODE = "NA"


def _codes(annotation: Any) -> tuple[str, ...]:
    """The codes of a ``Literal[...]`` (optionally ``| None``) field; ``()`` for numbers."""
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            return tuple(str(a) for a in typing.get_args(arg))
    return ()


def _is_int(annotation: Any) -> bool:
    """``int`` / ``int | None`` / ``Annotated[int, ...] | None`` (years, counts, scores)."""
    for arg in (annotation, *typing.get_args(annotation)):
        if arg is int or (
            typing.get_origin(arg) is typing.Annotated and typing.get_args(arg)[0] is int
        ):
            return True
    return False


_FIELDS = HousePriceRequest.model_fields
TEXT_FIELDS = frozenset(n for n, f in _FIELDS.items() if _codes(f.annotation))
INT_FIELDS = frozenset(n for n, f in _FIELDS.items() if _is_int(f.annotation))
REQUIRED = frozenset(n for n, f in _FIELDS.items() if f.is_required())
# Fields whose codes include "NA": a missing value in the data means "none", not "unknown".
NONE_CODED = frozenset(n for n, f in _FIELDS.items() if NONE_CODE in _codes(f.annotation))
# (name, is_text) in schema order, resolved once: the hot path only reads attributes.
_FEATURES = tuple((name, name in TEXT_FIELDS) for name in _FIELDS)


# -- drift features -------------------------------------------------------------------------
def monitored_features(
    requests: Sequence[HousePriceRequest], responses: Sequence[Any] = ()
) -> list[dict[str, Scalar]]:
    """One dict per request with every request field (same keys, schema order)."""
    rows = []
    for request in requests:
        values = request.__dict__  # the validated fields; no model_dump copy per row
        rows.append(
            {
                name: (None if (v := values[name]) is None else v if is_text else float(v))
                for name, is_text in _FEATURES
            }
        )
    return rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def requests_from_frame(frame: pd.DataFrame) -> list[HousePriceRequest]:
    """Prepared rows as requests (request fields only; the rest the model imputes).

    A missing basement quality or garage type becomes ``"NA"`` (no basement / garage), as
    the data means it; other missing values are left out, as a client would. A value the
    API refuses (e.g. a remodel year before construction, once in the Ames data) is left
    out of the request; a row whose required fields are refused is skipped.
    """
    from pydantic import ValidationError

    columns = [name for name in _FIELDS if name in frame.columns]
    requests = []
    for record in frame[columns].to_dict("records"):
        data: dict[str, Any] = {}
        for name, value in record.items():
            if _missing(value):
                if name in NONE_CODED:
                    data[name] = NONE_CODE
                continue
            data[name] = (
                str(value)
                if name in TEXT_FIELDS
                else int(value)
                if name in INT_FIELDS
                else float(value)
            )
        for _ in range(2):  # once as given, once without the refused optional fields
            try:
                requests.append(HousePriceRequest(**data))
                break
            except ValidationError as error:
                refused = {e["loc"][0] for e in error.errors() if e["loc"]}
                if not refused and data.get("year_remod_add") is not None:
                    refused = {"year_remod_add"}  # the model-level rule names no field
                if not refused or refused & REQUIRED:
                    break
                data = {k: v for k, v in data.items() if k not in refused}
    return requests


# -- live quality ---------------------------------------------------------------------------
def live_quality(predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]) -> dict[str, float]:
    """``{"rmsle", "within_10pct"}`` of logged responses against reported sale prices.

    Rows whose reported price is not a positive, finite number cannot be scored on a log
    scale and are left out; ``{}`` when no row is left.
    """
    import numpy as np

    from opsline.recipes.house_price.metrics import regression_metrics

    if len(predictions) != len(actuals):
        raise ValueError(f"{len(predictions)} predictions for {len(actuals)} actuals")
    pairs = [
        (float(p["predicted_price"]), float(a))
        for p, a in zip(predictions, actuals, strict=True)
        if a is not None and math.isfinite(float(a)) and float(a) > 0
    ]
    if not pairs:
        return {}
    predicted, actual = np.array(pairs).T
    metrics = regression_metrics(actual, predicted)
    return {name: metrics[name] for name in LIVE_METRICS}


# -- feedback rows --------------------------------------------------------------------------
# What a request leaves out, filled as the served model filled it: the train split's median
# (numbers) or most frequent code (categories) of the default Ames data (``Preprocessor.fit``
# on it computes these; a test keeps them in sync). ``None`` = the most frequent code is
# "none" (no alley, pool, fence ...), stored as missing like in the data. The dict's order is
# the prepared split's column order, between ``pid`` first and ``sale_price`` last.
DEFAULTS: dict[str, Any] = {
    "ms_subclass": 20,
    "ms_zoning": "RL",
    "lot_frontage": 68.0,
    "lot_area": 9364,
    "street": "Pave",
    "alley": None,
    "lot_shape": "Reg",
    "land_contour": "Lvl",
    "utilities": "AllPub",
    "lot_config": "Inside",
    "land_slope": "Gtl",
    "neighborhood": "NAmes",
    "condition_1": "Norm",
    "condition_2": "Norm",
    "bldg_type": "1Fam",
    "house_style": "1Story",
    "overall_qual": 6,
    "overall_cond": 5,
    "year_built": 1972,
    "year_remod_add": 1992,
    "roof_style": "Gable",
    "roof_matl": "CompShg",
    "exterior_1st": "VinylSd",
    "exterior_2nd": "VinylSd",
    "mas_vnr_type": "None",
    "mas_vnr_area": 0.0,
    "exter_qual": "TA",
    "exter_cond": "TA",
    "foundation": "CBlock",
    "bsmt_qual": "TA",
    "bsmt_cond": "TA",
    "bsmt_exposure": "No",
    "bsmtfin_type_1": "Unf",
    "bsmtfin_sf_1": 376.5,
    "bsmtfin_type_2": "Unf",
    "bsmtfin_sf_2": 0.0,
    "bsmt_unf_sf": 459.0,
    "total_bsmt_sf": 976.0,
    "heating": "GasA",
    "heating_qc": "Ex",
    "central_air": "Y",
    "electrical": "SBrkr",
    "first_flr_sf": 1079,
    "second_flr_sf": 0,
    "low_qual_fin_sf": 0,
    "gr_liv_area": 1437,
    "bsmt_full_bath": 0.0,
    "bsmt_half_bath": 0.0,
    "full_bath": 2,
    "half_bath": 0,
    "bedroom_abvgr": 3,
    "kitchen_abvgr": 1,
    "kitchen_qual": "TA",
    "totrms_abvgrd": 6,
    "functional": "Typ",
    "fireplaces": 1,
    "fireplace_qu": None,
    "garage_type": "Attchd",
    "garage_yr_blt": 1979.0,
    "garage_finish": "Unf",
    "garage_cars": 2.0,
    "garage_area": 480.0,
    "garage_qual": "TA",
    "garage_cond": "TA",
    "paved_drive": "Y",
    "wood_deck_sf": 0,
    "open_porch_sf": 25,
    "enclosed_porch": 0,
    "three_ssn_porch": 0,
    "screen_porch": 0,
    "pool_area": 0,
    "pool_qc": None,
    "fence": None,
    "misc_feature": None,
    "misc_val": 0,
    "mo_sold": 6,
    "yr_sold": 2008,
    "sale_type": "WD",
    "sale_condition": "Normal",
}
COLUMNS = (KEY, *DEFAULTS, TARGET)
# The prepared split's dtypes: whole numbers without gaps are int64, columns with gaps
# float64, codes object (``ms_subclass`` is a numeric code in the data); the codes whose
# default is "none" are object too.
DTYPES = {
    name: "int64"
    if isinstance(DEFAULTS.get(name, 0), int)
    else "float64"
    if isinstance(DEFAULTS[name], float)
    else "object"
    for name in COLUMNS
}


def feedback_frame(requests: Sequence[dict[str, Any]], actuals: Sequence[Any]) -> pd.DataFrame:
    """Logged requests (``model_dump(mode="json")``) + sale prices as prepared train rows.

    Columns and dtypes are the prepared split's. What a request leaves out gets
    :data:`DEFAULTS` (what the served model imputed for it); ``"NA"`` codes become missing
    values, as in the data; int64 columns get the request's number rounded. ``pid`` is
    ``FEEDBACK_KEY_BASE + i`` for the i-th row: deterministic and never a real Ames parcel
    id, unique within one call — so all feedback rows go into the train split through one
    call (two calls would repeat keys, which validation then reports).
    """
    import pandas as pd

    if len(requests) != len(actuals):
        raise ValueError(f"{len(requests)} requests for {len(actuals)} actuals")
    rows = []
    for i, (request, actual) in enumerate(zip(requests, actuals, strict=True)):
        given = {
            k: (None if v == NONE_CODE else v)
            for k, v in request.items()
            if k in DEFAULTS and v is not None
        }
        row = {KEY: FEEDBACK_KEY_BASE + i, **DEFAULTS, **given, TARGET: float(actual)}
        for name, dtype in DTYPES.items():
            if dtype == "int64":
                row[name] = round(float(row[name]))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype(DTYPES)
