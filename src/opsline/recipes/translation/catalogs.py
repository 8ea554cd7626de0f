"""Danish–English pairs from gettext catalogs: compiled ``.mo`` and source ``.po`` files.

Each catalog maps an English msgid to its Danish msgstr; the header names the project and
translation team, which becomes the pair's attribution. Context prefixes are dropped and
plural entries contribute their singular forms; fuzzy (unreviewed) .po entries are skipped.
"""

from __future__ import annotations

import ast
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

from opsline.errors import NoDatasetError


def read_mo(data: bytes) -> dict[str, str]:
    """msgid -> msgstr of a compiled catalog (plural entries: the singular forms).

    A direct reading of the GNU .mo layout (magic, count, two offset tables), so no private
    attribute of :mod:`gettext` is relied upon.
    """
    if len(data) < 28:
        raise ValueError("too short for a .mo file")
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if order is None:
        raise ValueError("not a .mo file (bad magic number)")
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])
    catalog: dict[str, str] = {}
    for i in range(count):
        id_len, id_off = struct.unpack(order + "2I", data[ids_at + 8 * i : ids_at + 8 * i + 8])
        str_len, str_off = struct.unpack(order + "2I", data[strs_at + 8 * i : strs_at + 8 * i + 8])
        msgid = data[id_off : id_off + id_len].decode("utf-8", errors="replace")
        msgstr = data[str_off : str_off + str_len].decode("utf-8", errors="replace")
        catalog[msgid] = msgstr
    return catalog


def read_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file; fuzzy, obsolete and plural entries are skipped."""
    catalog: dict[str, str] = {}
    entry: dict[str, list[str]] = {}
    key: str | None = None
    fuzzy = False

    def flush() -> None:
        if entry.get("msgid") is not None and entry.get("msgstr") is not None and not fuzzy:
            msgid = "".join(entry["msgid"])
            if "msgctxt" in entry:
                msgid = "".join(entry["msgctxt"]) + "\x04" + msgid
            catalog[msgid] = "".join(entry["msgstr"])

    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if not line or (line.startswith("#") and key is not None and "msgstr" in entry):
            flush()
            entry, key, fuzzy = {}, None, False
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word in ("msgctxt", "msgid", "msgstr"):
            if word == "msgctxt" and "msgstr" in entry:
                flush()
                entry, fuzzy = {}, False
            key = word
            entry[key] = [ast.literal_eval(rest)]
        elif line.startswith('"') and key is not None:
            entry[key].append(ast.literal_eval(line))
        else:  # msgid_plural / msgstr[n]: plural entries are not sentence pairs
            key = None
            entry = {"plural": []}
    return catalog


def _po_header(msgstr: str) -> dict[str, str]:
    fields = (line.partition(":") for line in msgstr.splitlines())
    return {k.strip(): v.strip() for k, _, v in fields if v}


def catalog_pairs(catalog: dict[str, str], domain: str) -> Iterator[tuple[str, str, str]]:
    """(da, en, attribution) from one catalog: the header names project and translator."""
    header = _po_header(catalog.get("", ""))
    project = header.get("Project-Id-Version", domain)
    team = header.get("Language-Team") or header.get("Last-Translator") or "unknown translators"
    attribution = f"gettext {domain}: {project}, Danish translation by {team}"
    for msgid, msgstr in catalog.items():
        if not msgid or not msgstr:
            continue
        msgid = msgid.split("\x04")[-1].split("\x00")[0]  # drop context; singular form
        msgstr = msgstr.split("\x00")[0]
        yield msgstr, msgid, attribution


def load_catalogs(dirs: Sequence[str]) -> list[tuple[str, str, str]]:
    """(da, en, attribution) of every .mo/.po file in ``dirs`` (files or folders)."""
    from opsline.recipes.translation.sources import resolve_path

    files: list[Path] = []
    for folder in dirs:
        path = resolve_path(folder, "gettext catalog folder")
        files += (
            [path]
            if path.is_file()
            else sorted(p for p in path.iterdir() if p.suffix in (".mo", ".po"))
        )
    rows: list[tuple[str, str, str]] = []
    for file in files:
        try:
            catalog = (
                read_mo(file.read_bytes())
                if file.suffix == ".mo"
                else read_po(file.read_text(encoding="utf-8", errors="replace"))
            )
        except (OSError, ValueError, SyntaxError, struct.error):
            continue  # one unreadable catalog must not sink the others
        rows += catalog_pairs(catalog, file.stem)
    if not rows:
        raise NoDatasetError(f"No Danish gettext catalogs with translations in {list(dirs)}.")
    return rows
