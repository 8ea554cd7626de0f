"""The three data sources read real data into one frame layout (attribution preserved)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from opsline.errors import NoDatasetError, UsageError
from opsline.recipes.translation import sources

GETTEXT_DIR = Path("/usr/share/locale/da/LC_MESSAGES")


def data_cfg(**values):
    return OmegaConf.create(values)


def test_tatoeba_reads_every_pair_with_its_attribution(tatoeba):
    frame = sources.load_pairs(data_cfg(source="tatoeba", path=str(tatoeba)))
    assert list(frame.columns) == list(sources.COLUMNS)
    assert len(frame) == 25_944
    first = frame.iloc[0]
    # The file is English<TAB>Danish<TAB>attribution: the columns come out da, en.
    assert (first.da, first.en) == ("Gå!", "Go.")
    assert first.attribution.startswith("CC-BY 2.0 (France) Attribution: tatoeba.org #")
    assert frame["attribution"].str.contains("tatoeba.org").all()
    assert (frame["origin"] == "tatoeba").all()


def test_tatoeba_path_from_environment(monkeypatch, tatoeba):
    monkeypatch.setenv(sources.TATOEBA_ENV, str(tatoeba))
    assert sources.tatoeba_path(data_cfg(source="tatoeba", path=None)) == tatoeba


def test_missing_tatoeba_file_is_one_clear_error():
    with pytest.raises(NoDatasetError, match=r"Tatoeba file 'nowhere/dan-eng\.tsv' does not exist"):
        sources.load_pairs(data_cfg(source="tatoeba", path="nowhere/dan-eng.tsv"))


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(UsageError, match="tatoeba, hf, gettext"):
        sources.load_pairs(data_cfg(source="europarl"))


def test_hf_source_without_dataset_id_is_a_usage_error():
    with pytest.raises(UsageError, match="hf_dataset"):
        sources.load_pairs(data_cfg(source="hf", hf_dataset=None))


def _mo_bytes(catalog: dict[str, str]) -> bytes:
    """A GNU .mo file (little endian) for ``catalog``, as msgfmt would write it."""
    keys = sorted(catalog)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(catalog[k].encode() + b"\0" for k in keys)
    n = len(keys)
    start = 28 + 16 * n
    id_table, str_table, offset = [], [], start
    for k in keys:
        id_table += [len(k.encode()), offset]
        offset += len(k.encode()) + 1
    for k in keys:
        str_table += [len(catalog[k].encode()), offset]
        offset += len(catalog[k].encode()) + 1
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    return header + struct.pack(f"<{4 * n}I", *id_table, *str_table) + ids + strs


def test_read_mo_handles_header_context_and_plurals(tmp_path):
    catalog = {
        "": "Project-Id-Version: demo 1.0\nLanguage-Team: Danish <da@example.org>\n",
        "_Open": "_Åbn",
        "menu\x04Quit": "Afslut",
        "%d file\x00%d files": "%d fil\x00%d filer",
    }
    (tmp_path / "demo.mo").write_bytes(_mo_bytes(catalog))
    frame = sources.load_pairs(data_cfg(source="gettext", gettext_dirs=[str(tmp_path)]))
    pairs = set(zip(frame.da, frame.en, strict=True))
    assert pairs == {("_Åbn", "_Open"), ("Afslut", "Quit"), ("%d fil", "%d file")}
    assert set(frame.attribution) == {
        "gettext demo: demo 1.0, Danish translation by Danish <da@example.org>"
    }


def test_read_po_skips_fuzzy_and_untranslated(tmp_path):
    (tmp_path / "demo.po").write_text(
        'msgid ""\nmsgstr "Project-Id-Version: demo\\n"\n\n'
        '#: a.c:1\nmsgid "Save"\nmsgstr "Gem"\n\n'
        '#, fuzzy\nmsgid "Close"\nmsgstr "Luk"\n\n'
        'msgid "Help"\nmsgstr ""\n\n'
        'msgid ""\n"Long "\n"line"\nmsgstr "Lang "\n"linje"\n',
        encoding="utf-8",
    )
    frame = sources.load_pairs(data_cfg(source="gettext", gettext_dirs=[str(tmp_path)]))
    assert set(zip(frame.da, frame.en, strict=True)) == {
        ("Gem", "Save"),
        ("Lang linje", "Long line"),
    }


@pytest.mark.skipif(not GETTEXT_DIR.is_dir(), reason="no Danish gettext catalogs installed")
def test_gettext_reads_the_machines_danish_catalogs():
    frame = sources.load_pairs(data_cfg(source="gettext", gettext_dirs=[str(GETTEXT_DIR)]))
    assert len(frame) > 5_000
    assert frame["attribution"].str.startswith("gettext ").all()
    domains = frame["attribution"].str.extract(r"^gettext ([^:]+):")[0]
    assert domains.nunique() >= 10
    assert (frame.da != "").all() and (frame.en != "").all()


def test_hf_source_reads_translation_records(monkeypatch):
    """The hf path with the `datasets` API stubbed (no network in tests)."""
    import sys
    import types

    calls = {}

    def load_dataset(name, split):
        calls["args"] = (name, split)
        return [
            {"translation": {"da": "Hej.", "en": "Hi."}},
            {"da": "Tak.", "en": "Thanks."},
            {"text": "not a pair"},
        ]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    frame = sources.load_pairs(
        data_cfg(source="hf", hf_dataset="someone/opus-da-en", hf_split="train")
    )
    assert calls["args"] == ("someone/opus-da-en", "train")
    assert list(zip(frame.da, frame.en, strict=True)) == [("Hej.", "Hi."), ("Tak.", "Thanks.")]
    assert frame.attribution.str.contains("someone/opus-da-en").all()


def test_hf_source_offline_is_one_clear_error(monkeypatch):
    import sys
    import types

    def load_dataset(name, split):
        raise ConnectionError("Couldn't reach the Hub\nlong traceback text")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(NoDatasetError, match="ConnectionError: Couldn't reach the Hub\\)"):
        sources.load_pairs(data_cfg(source="hf", hf_dataset="someone/opus-da-en"))
