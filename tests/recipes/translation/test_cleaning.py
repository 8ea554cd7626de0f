"""Cleaning rules and the leak-free, deterministic split."""

from __future__ import annotations

import pandas as pd
from omegaconf import OmegaConf

from opsline.recipes.translation import cleaning


def frame(rows, origin="tatoeba"):
    return pd.DataFrame(
        [(da, en, "CC-BY x", origin) for da, en in rows],
        columns=["da", "en", "attribution", "origin"],
    )


def test_unicode_and_whitespace_are_normalised():
    decomposed = "Sma\u030a"  # "Små" with a combining ring
    out = cleaning.clean(frame([(f"  {decomposed}\u00a0ting \n", "Small  things ")]))
    assert out.loc[0, "da"] == "Små ting"
    assert out.loc[0, "en"] == "Small things"


def test_gettext_accelerators_are_removed_but_not_identifiers():
    out = cleaning.clean(
        frame([("_Åbn fil", "_Open file"), ("brug my_var", "use my_var")], origin="gettext")
    )
    assert list(out.da) == ["Åbn fil", "brug my_var"]
    assert list(out.en) == ["Open file", "use my_var"]


def test_empty_long_misaligned_identical_and_duplicate_pairs_are_dropped():
    rows = [
        ("Hej.", "Hi."),
        ("", "Empty."),
        ("Tom.", ""),
        ("Ja " * 50, "Yes " * 50),
        ("Jeg er glad.", "I am happy and this goes on and on and on for ages."),
        ("Tom", "Tom"),
        ("Hej.", "Hi."),
        ("Hej.", "Hello."),
    ]
    out = cleaning.clean(frame(rows), OmegaConf.create({"max_words": 40}))
    assert list(zip(out.da, out.en, strict=True)) == [("Hej.", "Hi."), ("Hej.", "Hello.")]


def test_short_pairs_skip_the_ratio_rule():
    out = cleaning.clean(frame([("Ja", "Yes, sure")]))  # ratio 4.5, but both short
    assert len(out) == 1


def test_split_is_leak_free_by_danish_sentence(tatoeba_splits):
    seen = {}
    for name, split in tatoeba_splits.items():
        for key in split["da"].map(cleaning.split_key).unique():
            assert seen.setdefault(key, name) == name, f"{key!r} in {seen[key]} and {name}"
    sizes = {k: len(v) for k, v in tatoeba_splits.items()}
    assert sizes["test"] >= 1_000 and sizes["val"] >= 800, sizes
    # A Danish sentence with several English translations keeps all of them together.
    test = tatoeba_splits["test"]
    assert test["da"].duplicated().any()


def test_split_is_deterministic_and_stable_when_data_grows(tatoeba_splits):
    all_pairs = pd.concat(tatoeba_splits.values(), ignore_index=True)
    again = cleaning.split(all_pairs)
    for name in ("train", "val", "test"):
        assert set(again[name]["da"]) == set(tatoeba_splits[name]["da"])
    half = cleaning.split(all_pairs.iloc[::2])
    for name in ("train", "val", "test"):
        assert set(half[name]["da"]) <= set(tatoeba_splits[name]["da"])


def test_subset_keeps_whole_danish_groups(tatoeba_splits):
    all_pairs = pd.concat(tatoeba_splits.values(), ignore_index=True)
    small = cleaning.subset(all_pairs, 500)
    assert len(small) == 500
    kept = set(small["da"])
    assert len(small) == len(cleaning.subset(all_pairs, 500))
    # Every kept Danish sentence brings all its translations, except possibly the last group.
    full_counts = all_pairs[all_pairs["da"].isin(kept)].groupby("da").size()
    partial = (small.groupby("da").size() != full_counts).sum()
    assert partial <= 1
