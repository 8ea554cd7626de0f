"""Danish–English sentence pairs from three sources behind one function, :func:`load_pairs`.

Every source returns the same frame: ``da`` (source), ``en`` (target), ``attribution``
(who wrote and licensed the pair; kept in the processed data) and ``origin`` (source name).

* ``tatoeba`` — the Tatoeba English–Danish export (tab-separated English, Danish,
  attribution; CC-BY 2.0 FR). Read from ``recipe.data.path``, else ``$OPSLINE_TATOEBA_DA_EN``,
  else downloaded once from ``recipe.data.url`` into ``<workspace>/cache/``.
* ``hf`` — a Hugging Face dataset id (needs the ``datasets`` package and a network).
* ``gettext`` — msgid/msgstr pairs of the Danish gettext catalogs (``.mo``/``.po``) installed
  on the machine: real, offline, software-string domain.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.data.paths import resolve_path
from opsline.errors import NoDatasetError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

COLUMNS = ("da", "en", "attribution", "origin")
TATOEBA_ENV = "OPSLINE_TATOEBA_DA_EN"
TATOEBA_FILE = "dan-eng.tsv"
GETTEXT_DIR = "/usr/share/locale/da/LC_MESSAGES"


# -- tatoeba -----------------------------------------------------------------------------------
def parse_tatoeba(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """(da, en, attribution) from the ManyThings/Tatoeba export's ``en<TAB>da<TAB>attr`` lines."""
    for line in lines:
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) < 2:
            continue
        attribution = parts[2] if len(parts) > 2 else ""
        yield parts[1], parts[0], attribution


def _download_tatoeba(url: str) -> Path:
    """Fetch the zip once into the workspace cache; the extracted TSV is reused afterwards."""
    import urllib.request

    from opsline.workspace import home

    target = home() / "cache" / "tatoeba-da-en" / TATOEBA_FILE
    if target.exists():
        return target
    request = urllib.request.Request(url, headers={"User-Agent": "opsline (data prepare)"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
    except OSError as error:
        raise NoDatasetError(
            f"Could not download the Tatoeba data from {url} ({error}); set "
            f"recipe.data.path=/path/to/{TATOEBA_FILE} or ${TATOEBA_ENV}."
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    if url.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            name = next((n for n in archive.namelist() if n.endswith((".txt", ".tsv"))), None)
            if name is None:
                raise NoDatasetError(f"The archive at {url} holds no .txt/.tsv file.")
            payload = archive.read(name)
    target.write_bytes(payload)
    return target


def tatoeba_path(data_cfg: Any) -> Path:
    """Where the Tatoeba TSV is: ``path``, then ``$OPSLINE_TATOEBA_DA_EN``, then the URL."""
    path = data_cfg.get("path") or os.environ.get(TATOEBA_ENV)
    if path:
        return resolve_path(path, "Tatoeba file")
    url = data_cfg.get("url")
    if not url:
        raise NoDatasetError(f"No Tatoeba data: set recipe.data.path or ${TATOEBA_ENV}.")
    return _download_tatoeba(str(url))


def load_tatoeba(data_cfg: Any) -> list[tuple[str, str, str]]:
    path = tatoeba_path(data_cfg)
    with path.open(encoding="utf-8", errors="replace") as handle:
        rows = list(parse_tatoeba(handle))
    if not rows:
        raise NoDatasetError(f"{path} holds no tab-separated English–Danish pairs.")
    return rows


# -- hugging face ------------------------------------------------------------------------------
def _hf_pair(record: dict[str, Any]) -> tuple[str, str] | None:
    """(da, en) from the common layouts: ``translation: {da, en}`` or ``da``/``en`` columns."""
    pair = record.get("translation") if isinstance(record.get("translation"), dict) else record
    da, en = pair.get("da"), pair.get("en")
    if isinstance(da, str) and isinstance(en, str):
        return da, en
    return None


def load_hf(data_cfg: Any) -> list[tuple[str, str, str]]:
    from opsline.data.hub import load_hf_split

    dataset_id, split, records = load_hf_split(data_cfg)
    attribution = f"Hugging Face dataset {dataset_id} ({split}); see its dataset card"
    rows = [(p[0], p[1], attribution) for p in map(_hf_pair, records) if p is not None]
    if not rows:
        raise NoDatasetError(f"{dataset_id!r} has no 'translation: {{da, en}}' or da/en columns.")
    return rows


def load_gettext(data_cfg: Any) -> list[tuple[str, str, str]]:
    from opsline.recipes.translation.catalogs import load_catalogs

    return load_catalogs(data_cfg.get("gettext_dirs") or [GETTEXT_DIR])


SOURCES: dict[str, Callable[[Any], list[tuple[str, str, str]]]] = {
    "tatoeba": load_tatoeba,
    "hf": load_hf,
    "gettext": load_gettext,
}


def load_pairs(data_cfg: Any) -> pd.DataFrame:
    """The raw pairs of ``recipe.data.source`` as a frame with :data:`COLUMNS`."""
    import pandas as pd

    source = str(data_cfg.get("source") or "tatoeba")
    if source not in SOURCES:
        raise UsageError(
            f"Unknown recipe.data.source {source!r}. Valid sources: {', '.join(SOURCES)}."
        )
    rows = SOURCES[source](data_cfg)
    frame = pd.DataFrame(rows, columns=["da", "en", "attribution"])
    frame["origin"] = source
    return frame[list(COLUMNS)]
