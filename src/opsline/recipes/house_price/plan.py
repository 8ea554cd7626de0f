"""The request path compiled: fitted preprocessing as numpy arrays, built once at load.

:class:`Preprocessor` (pandas) stays the training and evaluation path; serving one request
through it costs ~50 ms of column-by-column DataFrame work. :class:`FeaturePlan` turns the
same ``preprocessing.json`` into arrays and dicts once, then builds a batch with one Python
pass over the request dicts (into plain lists, converted to one float array) and a handful
of vectorised numpy operations.

It reproduces ``Preprocessor.complete`` followed by ``matrix`` / ``gbm_frame`` value for
value (tests compare them bit for bit on the whole test split):

* a field that is absent or ``None`` takes ``defaults`` (``complete``); a NaN is kept and
  then imputed like a missing value in a data row: numbers -> train median, categories ->
  ``"NA"``;
* categories are compared as text, numbers written as integers (``ms_subclass`` 20 ->
  ``"20"``, as ``_as_text`` does); an unknown ordinal level counts 0;
* the arithmetic is the same float64 operations in the same order (sums left to right,
  ``clip(lower=0)`` keeping NaN, log1p, ``(x - mean) / std``), cast to float32 last, and the
  MLP matrix gets the same ``nan_to_num``;
* the GBM matrix holds each nominal column as its index into the train category list
  (the codes LightGBM's pandas path computes itself), unknown -> NaN.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsline.recipes.house_price.features import (
    ENGINEERED,
    LOG1P,
    NOMINAL,
    NONE_LEVEL,
    NUMERIC_FEATURES,
    ORDINAL,
    RAW_NUMERIC,
    Preprocessor,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

_NAN = float("nan")
_PLAIN_NUMBERS = (float, int)  # exact classes: bool and numpy scalars take _number()
_I = {c: i for i, c in enumerate(NUMERIC_FEATURES)}
_ENG = _I[ENGINEERED[0]]  # engineered features follow the raw numbers and ordinals
# yr_sold minus these -> age, remod_age, garage_age (engineered columns 1, 2, 6)
_YEARS = [_I["year_built"], _I["year_remod_add"], _I["garage_yr_blt"]]
_PORCHES = [
    _I[c]
    for c in ("wood_deck_sf", "open_porch_sf", "enclosed_porch", "three_ssn_porch", "screen_porch")
]


def _number(value: Any) -> float:
    """A raw value as ``pd.to_numeric(errors="coerce")`` would read it (NaN if not a number)."""
    if isinstance(value, (int, float)):  # bool too (0 / 1); requests never send one
        return float(value)
    if isinstance(value, numbers.Real):  # numpy scalars
        return float(value)
    if isinstance(value, str):
        # float() also accepts "1_000"; pandas does not, so neither do we.
        if "_" in value:
            return _NAN
        try:
            return float(value)
        except ValueError:
            return _NAN
    return _NAN


def _text(value: Any) -> str:
    """``features._as_text`` plus its ``fillna("NA")``, for one value."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE_LEVEL
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if isinstance(value, numbers.Integral):
            return str(int(value))
        value = float(value)  # numpy floats: pandas hands a float column over as floats
        return NONE_LEVEL if math.isnan(value) else str(int(value))
    return str(value)


class FeaturePlan:
    """The fitted preprocessing of one model, compiled for request batches.

    Args:
        pre: the model's fitted preprocessing (``preprocessing.json``).
    """

    def __init__(self, pre: Preprocessor):
        import numpy as np

        self.n_numeric = len(NUMERIC_FEATURES)
        n_raw = len(RAW_NUMERIC) + len(ORDINAL)
        # Nominal levels get one global id each: id -> LightGBM code and one-hot column,
        # looked up for the whole batch at once. Id 0 = a level the model never saw.
        codes, hot = [_NAN], [-1]
        # column -> (slot kind, position in its row, level lookup); kinds: 0 number,
        # 1 ordinal (text -> float, unknown 0), 2 nominal (text -> level id, unknown 0).
        self._slots: dict[str, tuple[int, int, dict[str, Any]]] = {}
        for j, column in enumerate(RAW_NUMERIC):
            self._slots[column] = (0, j, {})
        for j, (column, mapping) in enumerate(ORDINAL.items()):
            self._slots[column] = (
                1,
                len(RAW_NUMERIC) + j,
                {k: float(v) for k, v in mapping.items()},
            )
        offset = self.n_numeric
        for j, column in enumerate(NOMINAL):
            onehot = {v: offset + i for i, v in enumerate(pre.nominal[column])}
            offset += len(pre.nominal[column])
            gbm = {v: float(i) for i, v in enumerate(pre.gbm_nominal[column])}
            ids = {}
            for level in sorted(set(gbm) | set(onehot)):
                ids[level] = len(codes)
                codes.append(gbm.get(level, _NAN))
                hot.append(onehot.get(level, -1))
            self._slots[column] = (2, j, ids)
        self.n_features = offset  # numbers then one-hot columns, as Preprocessor.matrix
        self._code_of = np.array(codes)
        self._hot_of = np.array(hot, dtype=np.intp)
        # The row every record starts from: complete() fills absent fields with defaults.
        self._default_numbers, self._default_ids = [0.0] * n_raw, [0] * len(NOMINAL)
        self._put(self._default_numbers, self._default_ids, pre.defaults)
        self._raw_medians = np.array([pre.medians[c] for c in RAW_NUMERIC])
        self._eng_medians = np.array([pre.medians[c] for c in ENGINEERED])
        self._log1p = np.array([_I[c] for c in LOG1P])
        self._mean = np.array([pre.means[c] for c in NUMERIC_FEATURES])
        self._std = np.array([pre.stds[c] for c in NUMERIC_FEATURES])

    # -- one pass over the records ----------------------------------------------------
    def _put(self, numbers: list[float], ids: list[int], record: dict[str, Any]) -> None:
        """Write the record's given fields over a default row (None = absent, as complete)."""
        slots = self._slots
        for column, value in record.items():
            if value is None or (slot := slots.get(column)) is None:
                continue
            kind, j, lookup = slot
            # Fast paths for what validated requests carry (plain float/int, str); the
            # helpers handle the rest (numpy scalars, NaN, numeric category codes).
            if kind == 0:
                numbers[j] = value if value.__class__ in _PLAIN_NUMBERS else _number(value)
            else:
                text = value if value.__class__ is str else _text(value)
                if kind == 1:
                    numbers[j] = lookup.get(text, 0.0)
                else:
                    ids[j] = lookup.get(text, 0)

    def _gather(self, records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(n, numeric) float64 with raw numbers and ordinals filled in, (n, nominal) ids."""
        import numpy as np

        # Only the fields a record gives are visited: a request names 4-33 of 79 columns.
        rows, id_rows = [], []
        for record in records:
            numbers, ids = self._default_numbers.copy(), self._default_ids.copy()
            self._put(numbers, ids, record)
            rows.append(numbers)
            id_rows.append(ids)
        n, n_raw = len(rows), len(self._default_numbers)
        values = np.empty((n, self.n_numeric))
        values[:, :n_raw] = np.array(rows, dtype=np.float64).reshape(n, n_raw)
        return values, np.array(id_rows, dtype=np.intp).reshape(n, len(NOMINAL))

    def _numbers(self, records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """``base_frame``'s numeric block (n, NUMERIC_FEATURES) in float64."""
        import numpy as np

        x, ids = self._gather(records)
        raw = x[:, : len(RAW_NUMERIC)]
        np.copyto(raw, self._raw_medians, where=np.isnan(raw))  # fillna(medians)
        col = x.T  # col[i] is feature i over the batch (a view, no copy)
        eng = x[:, _ENG:]
        # The float operations of features.engineer, in the same order, so the values are
        # bit-identical; np.maximum keeps NaN as pandas' clip(lower=0) does. A row sum
        # of 5 values adds left to right in numpy (pairwise summation starts at 8).
        eng[:, 0] = col[_I["total_bsmt_sf"]] + col[_I["gr_liv_area"]]
        eng[:, [1, 2, 6]] = np.maximum(col[_I["yr_sold"], :, None] - x[:, _YEARS], 0.0)
        eng[:, 3] = (
            col[_I["full_bath"]]
            + 0.5 * col[_I["half_bath"]]
            + col[_I["bsmt_full_bath"]]
            + 0.5 * col[_I["bsmt_half_bath"]]
        )
        eng[:, 4] = col[_I["overall_qual"]] * col[_I["gr_liv_area"]]
        eng[:, 5] = x[:, _PORCHES].sum(axis=1)
        eng[:, 7] = col[_I["second_flr_sf"]] > 0
        np.copyto(eng, self._eng_medians, where=np.isnan(eng))
        return x, ids

    # -- model inputs -----------------------------------------------------------------
    def mlp_matrix(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """``Preprocessor.matrix(complete(records))``: float32 (n, features)."""
        import numpy as np

        x, ids = self._numbers(records)
        x[:, self._log1p] = np.log1p(np.maximum(x[:, self._log1p], 0.0))
        out = np.zeros((len(x), self.n_features), dtype=np.float32)
        out[:, : self.n_numeric] = (x - self._mean) / self._std
        # nan_to_num(nan=posinf=neginf=0), without its Python-level overhead on one row.
        out[~np.isfinite(out)] = 0.0
        hot = self._hot_of[ids]
        rows, cols = np.nonzero(hot >= 0)
        out[rows, hot[rows, cols]] = 1.0
        return out

    def gbm_matrix(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """``gbm_frame(complete(records))`` as LightGBM reads it: float64, codes for nominals."""
        import numpy as np

        x, ids = self._numbers(records)
        return np.concatenate([x, self._code_of[ids]], axis=1)


def gbm_frame_matrix(frame: pd.DataFrame) -> np.ndarray:
    """A ``Preprocessor.gbm_frame`` as the float64 matrix LightGBM builds from it itself:
    category codes (index into the train categories), NaN for unknown levels."""
    import numpy as np

    out = frame[NUMERIC_FEATURES].to_numpy(dtype=np.float64)
    codes = np.column_stack([frame[c].cat.codes.to_numpy() for c in NOMINAL]).astype(np.float64)
    codes[codes < 0] = np.nan
    return np.concatenate([out, codes], axis=1)
