"""MkDocs hook: one site page per benchmark report in ``benchmarks/*.md``.

The reports are written by the benchmark scripts themselves, so the site includes them as
they are (``--8<--`` snippets) instead of copying them. Every report that exists at build
time gets a generated page ``benchmarks/<name>.md`` and an entry under "Benchmarks" in the
navigation, so a new report (a soak or crash run, say) appears without touching the docs, and
a report that is not there yet cannot break the strict build. Generated pages keep the
report's own file name, so the links between reports (``prediction_log_cost.md``) resolve;
a report that links a file the site does not have (its script, say) is inlined instead, with
those links shown as repository paths, for the same reason.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.benchmark_pages")

SECTION = "Benchmarks"
INDEX = "benchmarks/index.md"
MARKER = "<!-- benchmark-reports -->"

# Short navigation titles; a report not listed here is titled from its file name.
TITLES = {
    "serving_tabular": "Serving: tabular",
    "prediction_log_cost": "Serving: prediction log cost",
    "house_price_inprocess": "House price in-process",
    "serving_image": "Serving: images",
    "image_onnx": "Images: ONNX Runtime",
    "serving_translation": "Serving: translation",
    "translation_int8": "Translation: int8",
    "translation_results": "Translation: quality",
    "text_generation_results": "Text generation: quality",
    "text_generation_serving": "Text generation: serving",
    "soak": "Soak test",
    "crash": "Crash tests",
}


def reports(config: MkDocsConfig) -> list[Path]:
    """The benchmark reports present now, in a stable order."""
    return reports_in(Path(config.config_file_path).parent / "benchmarks")


def title(report: Path) -> str:
    """The navigation title of one report."""
    return TITLES.get(report.stem, report.stem.replace("_", " ").capitalize())


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Append one navigation entry per report to the "Benchmarks" section."""
    for entry in config.nav or []:
        if isinstance(entry, dict) and SECTION in entry:
            section = entry[SECTION]
            listed = {next(iter(item.values())) for item in section if isinstance(item, dict)}
            # Sorted by title, so related reports sit together; `mkdocs serve` may call this
            # hook again on a rebuild, hence no duplicates.
            for report in sorted(reports(config), key=title):
                if f"benchmarks/{report.name}" not in listed:
                    section.append({title(report): f"benchmarks/{report.name}"})
            return config
    raise ValueError(f"mkdocs.yml has no {SECTION!r} section in nav")


# A Markdown link or image whose target is relative: `[text](target)`, not `http:`, `#…`.
LINK = re.compile(r"(!?)\[([^\]]*)\]\((?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)")


def _outside_site(report: Path) -> list[str]:
    """Relative link targets in a report that no site page answers (``soak.py``, ``../x``):
    only links to other reports resolve, since report pages keep the report's file name."""
    names = {r.name for r in reports_in(report.parent)}
    targets = [m.group(3) for m in LINK.finditer(report.read_text(encoding="utf-8"))]
    return [t for t in targets if t.split("#")[0] not in names]


def _repo_paths(report: Path) -> str:
    """The report's text with links outside the site turned into repository paths in code,
    so a report linking its script (``[soak.py](soak.py)``) cannot break the strict build."""
    names = {r.name for r in reports_in(report.parent)}

    def rewrite(match: re.Match[str]) -> str:
        target = match.group(3)
        if target.split("#")[0] in names:
            return match.group(0)
        path = posixpath.normpath(posixpath.join("benchmarks", target.split("#")[0]))
        return f"{match.group(2)} (`{path}`)"

    return LINK.sub(rewrite, report.read_text(encoding="utf-8"))


def reports_in(folder: Path) -> list[Path]:
    """The reports in one folder."""
    return sorted(folder.glob("*.md"))


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """Add a generated page per report that includes the report through snippets (or, when
    the report links files outside the site, its text with those links as repository paths)."""
    for report in reports(config):
        script = report.with_suffix(".py").name
        if _outside_site(report):
            log.info("benchmarks/%s links files outside the site; shown as paths", report.name)
            content = _repo_paths(report) + "\n\n---\n\n"
        else:
            content = f'--8<-- "benchmarks/{report.name}"\n\n---\n\n'
        content += f"*Report file: `benchmarks/{report.name}`"
        if report.with_suffix(".py").exists():
            content += f", written by `benchmarks/{script}`"
        content += ". See [Benchmarks](index.md) for how to rerun every benchmark.*\n"
        files.append(File.generated(config, f"benchmarks/{report.name}", content=content))
    return files


def _heading(report: Path) -> str:
    for line in report.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return title(report)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **_: Any) -> str:
    """List the reports present at build time on the benchmarks index page."""
    if page.file.src_uri != INDEX:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{INDEX} lost its marker {MARKER}")
    rows = [f"- [{title(r)}]({r.name}) — {_heading(r)}" for r in reports(config)]
    return markdown.replace(MARKER, "\n".join(rows))
