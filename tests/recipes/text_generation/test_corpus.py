"""Cleaning, chunking, de-duplication and the deterministic split of the text corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from opsline.config import config_dir
from opsline.errors import UsageError
from opsline.recipes.text_generation.corpus import (
    fingerprint,
    normalise_line,
    planned_rows,
    play_units,
    prepare,
)
from opsline.recipes.text_generation.sources import PLAY_FORMAT, Document

DATA_CONFIGS = ("shakespeare", "local_file", "medical_questions")


def data_config(name: str = "shakespeare", **overrides: object):
    """``recipe.data`` exactly as the shipped data config sets it, plus overrides."""
    cfg = OmegaConf.load(config_dir() / "data" / "text_generation" / f"{name}.yaml")
    for key, value in overrides.items():
        cfg.recipe.data[key] = value
    return cfg


@pytest.fixture(scope="module")
def shakespeare() -> dict[str, pd.DataFrame]:
    return prepare(data_config())


def test_data_configs_define_the_same_keys() -> None:
    # Any recipe.data.<key>=... override must work whichever data=... is chosen.
    keys = {name: set(data_config(name).recipe.data) for name in DATA_CONFIGS}
    assert keys["shakespeare"] == keys["local_file"] == keys["medical_questions"]
    assert all(data_config(n).recipe.data.max_chars <= 2048 for n in DATA_CONFIGS)


# -- the full corpus ---------------------------------------------------------------------------
def test_shakespeare_prepares_plausible_splits(shakespeare: dict[str, pd.DataFrame]) -> None:
    sizes = {k: len(v) for k, v in shakespeare.items()}
    assert set(sizes) == {"train", "val", "test"}
    assert 4000 < sum(sizes.values()) < 10000, sizes
    assert sizes["train"] > 0.8 * sum(sizes.values())
    assert min(sizes["val"], sizes["test"]) >= 100
    frame = pd.concat(shakespeare.values())
    assert frame["doc"].nunique() == 38
    lengths = frame["clean_text"].str.len()
    assert lengths.max() <= 1000 and lengths.min() > 0
    assert lengths.median() > 500  # passages are packed, not one speech per row


def test_no_markdown_left_and_speeches_read_like_a_play(
    shakespeare: dict[str, pd.DataFrame],
) -> None:
    text = "\n\n".join(pd.concat(shakespeare.values())["clean_text"])
    for markup in ("**", "_", "#", "\\", "[", "  ", "\t"):
        assert markup not in text, markup
    assert "\nIAGO:\n" in text and "\nHAMLET:\n" in text
    assert "\nTo be, or not to be: that is the question:\nWhether 'tis nobler" in text
    # Titles and headings are gone.
    assert not re.search(r"^(ACT [IVX]+|SCENE [IVX]+\.|Othello)$", text, re.MULTILINE)


def test_split_is_deterministic_and_leak_free(shakespeare: dict[str, pd.DataFrame]) -> None:
    again = prepare(data_config())
    for split, frame in shakespeare.items():
        pd.testing.assert_frame_equal(frame, again[split])
    for column in ("split_key", "clean_text"):
        seen = [set(f[column]) for f in shakespeare.values()]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2]), column
    marks = pd.concat(shakespeare.values())["clean_text"].map(fingerprint)
    assert not marks.duplicated().any()  # not even a case/punctuation variant twice


def test_split_of_a_play_does_not_move_when_plays_are_added() -> None:
    def where(frames: dict[str, pd.DataFrame], doc: str) -> dict[str, str]:
        return {t: s for s, f in frames.items() for t in f[f["doc"] == doc]["clean_text"]}

    alone = prepare(data_config(plays=["macbeth"]))
    more = prepare(data_config(plays=["macbeth", "hamlet"]))
    assert where(alone, "tragedies/macbeth") == where(more, "tragedies/macbeth")
    assert len(where(alone, "tragedies/macbeth")) > 50


def test_split_by_play_keeps_each_play_in_one_split() -> None:
    plays = ["comedies", "tragedies"]
    frames = prepare(
        data_config(plays=plays, split_by="document", val_fraction=0.2, test_fraction=0.2)
    )
    owners = {d: s for s, f in frames.items() for d in f["doc"]}
    assert len(owners) == 14
    for split, frame in frames.items():
        assert all(owners[d] == split for d in frame["doc"])
    # Same passages as the scene split: only where they go changes.
    by_scene = prepare(data_config(plays=plays))
    assert sorted(pd.concat(frames.values())["clean_text"]) == sorted(
        pd.concat(by_scene.values())["clean_text"]
    )


def test_max_rows_keeps_a_stable_subset() -> None:
    full = prepare(data_config(plays=["tragedies"]))
    small = prepare(data_config(plays=["tragedies"], max_rows=60))
    larger = prepare(data_config(plays=["tragedies"], max_rows=200))
    assert (
        {k: len(v) for k, v in small.items()}
        == planned_rows(60, 0.05, 0.05)
        == {"train": 54, "val": 3, "test": 3}
    )
    for split in small:
        kept = set(small[split]["clean_text"])
        assert kept <= set(larger[split]["clean_text"])
        assert kept <= set(full[split]["clean_text"])


def test_long_speeches_are_cut_between_lines_with_the_speaker_repeated() -> None:
    frames = prepare(data_config(plays=["hamlet"], max_chars=200))
    texts = pd.concat(frames.values())["clean_text"]
    assert texts.str.len().max() <= 200
    soliloquy = [t for t in texts if "To be, or not to be" in t]
    assert len(soliloquy) == 1 and soliloquy[0].startswith("HAMLET:\n")
    assert any(
        t.startswith("HAMLET:\nThe undiscover'd country")
        or (t.startswith("HAMLET:\n") and "undiscover'd" in t)
        for t in texts
    )


# -- cleaning rules ----------------------------------------------------------------------------
PLAY = """# A Play

## ACT I

### SCENE I. A hall.

_Enter IAGO and RODERIGO, with
Attendants_

**IAGO**  
'Sblood, but  you will not hear me:  
_\\[Aside]_  
I am not\\--what I am.

*Exit Roderigo.*

**RODERIGO**  
Tush!
"""  # noqa: W291 (Markdown hard line breaks are two trailing spaces; the test needs them)


def test_play_markdown_becomes_speaker_lines() -> None:
    units = play_units(Document(PLAY, "x/a-play", PLAY_FORMAT), False, "scene")
    assert [u.text for u in units] == [
        "IAGO:\n'Sblood, but you will not hear me:\nI am not--what I am.",
        "RODERIGO:\nTush!",
    ]
    assert {u.group for u in units} == {"x/a-play|ACT I|SCENE I. A hall."}


def test_stage_directions_can_be_kept() -> None:
    units = play_units(Document(PLAY, "x/a-play", PLAY_FORMAT), True, "scene")
    assert [u.text for u in units] == [
        "[Enter IAGO and RODERIGO, with Attendants]",
        "IAGO:\n'Sblood, but you will not hear me:\n[Aside]\nI am not--what I am.",
        "[Exit Roderigo.]",
        "RODERIGO:\nTush!",
    ]


def test_unicode_and_whitespace_are_normalised() -> None:
    assert normalise_line("\ufb01ne\u200b  day,\tsir\u00a0 ") == "fine day, sir"
    assert fingerprint("Hello,  WORLD!") == fingerprint("hello world")


# -- local files end to end --------------------------------------------------------------------
def _local(tmp_path: Path, name: str, content: str, **overrides: object):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return prepare(data_config("local_file", path=str(path), **overrides))


def test_local_jsonl_is_cleaned_deduplicated_and_cut(tmp_path: Path) -> None:
    long = "\n".join(f"Line {i} of the long record is here." for i in range(40))
    records = [{"text": f"Note number {i}: the cat sat on the mat."} for i in range(30)]
    records += [
        {"text": "NOTE number 0 - the cat sat on the mat!"},  # a variant of note 0
        {"text": "  \t "},
        {"text": long},
    ]
    frames = _local(
        tmp_path, "notes.jsonl", "\n".join(json.dumps(r) for r in records), max_chars=300
    )
    texts = pd.concat(frames.values())
    assert len(texts[texts["clean_text"].str.startswith("Note number ")]) == 30
    pieces = texts[texts["clean_text"].str.startswith("Line ")]
    assert len(pieces) > 1 and pieces["clean_text"].str.len().max() <= 300
    assert "\n".join(pieces["clean_text"]) == long  # cut between lines, nothing lost
    assert pieces["split_key"].nunique() == 1  # pieces of one record share its split
    assert set(texts["source"]) == {"file"}


def test_local_txt_passages(tmp_path: Path) -> None:
    passages = [f"Passage {i}\nwith two lines." for i in range(40)]
    frames = _local(tmp_path, "p.txt", "\n\n".join(passages))
    got = sorted(pd.concat(frames.values())["clean_text"], key=lambda t: int(t.split()[1]))
    assert got == passages
    assert all(len(f) for f in frames.values())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_chars": 4096}, r"max_chars must be between 16 and 2048"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, r"sum to less than 1"),
        ({"split_by": "chapter"}, r"Valid: scene, document, passage"),
        ({"max_rows": 2}, r"max_rows must be at least 3"),
    ],
)
def test_bad_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        prepare(data_config(**overrides))
