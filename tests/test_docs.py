"""The documentation site builds strictly and covers what the code has.

One strict ``mkdocs build`` (a broken link or anchor, a page missing from the navigation, a
module mkdocstrings cannot find or a docstring it cannot parse all fail it), then checks on
the built site computed from the code, not hard-coded: every top-level command of the Typer
app is in the CLI reference, every registered recipe has its page, and every benchmark report
has a page; the serving page's settings table names every ``OPSLINE_*`` setting the server
reads. README.md is a front page now: each of its relative links must point at a file.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from opsline.cli import app
from opsline.recipes.registry import list_recipes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with ``--strict``."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    warnings = [line for line in done.stderr.splitlines() if not line.startswith("INFO")]
    assert done.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings[-40:])
    return out


def _text(page: Path) -> str:
    """A built page's text without tags (so code spans read as plain words)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_site_has_the_key_pages(site: Path) -> None:
    for page in (
        "index.html",
        "getting-started/index.html",
        "concepts/architecture/index.html",
        "serving/index.html",
        "monitoring/closed-loop/index.html",
        "scaling/index.html",
        "benchmarks/index.html",
        "reference/cli/index.html",
        "reference/api/recipes/index.html",
        "development/index.html",
    ):
        assert (site / page).is_file(), page
    # The architecture page draws Mermaid diagrams (rendered in the browser from these).
    assert 'class="mermaid"' in (site / "concepts/architecture/index.html").read_text()


def test_cli_reference_lists_every_command(site: Path) -> None:
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="opsline")
    commands = [name for name in root.list_commands(ctx) if not root.get_command(ctx, name).hidden]
    assert len(commands) >= 10
    text = _text(site / "reference/cli/index.html")
    missing = [name for name in commands if f"opsline {name}" not in text]
    assert not missing, f"CLI reference lacks {missing}"
    # Rendered from the app: an option's help text from the code is on the page.
    assert "--slo-p95-ms" in text


def test_api_reference_is_rendered_from_docstrings(site: Path) -> None:
    text = _text(site / "reference/api/recipes/index.html")
    for name in ("opsline.recipes.base", "Recipe", "Predictor", "register_recipe"):
        assert name in text, name


def test_every_recipe_has_a_page(site: Path) -> None:
    recipes = list_recipes()
    assert recipes
    for name in recipes:
        page = site / "recipes" / name / "index.html"
        assert page.is_file(), f"recipe {name!r} has no page: add docs/recipes/{name}.md"
        assert name in _text(page)


def test_every_benchmark_report_has_a_page(site: Path) -> None:
    reports = sorted((ROOT / "benchmarks").glob("*.md"))
    assert reports
    for report in reports:
        page = site / "benchmarks" / report.stem / "index.html"
        assert page.is_file(), report.name
        # The report is included, not linked: its first heading is on the page.
        lines = report.read_text(encoding="utf-8").splitlines()
        heading = next((line[2:] for line in lines if line.startswith("# ")), None)
        if heading:
            words = " ".join(re.sub(r"[`*]", "", heading).split()[:4])
            assert words in _text(page), (report.name, words)


def test_readme_links_point_at_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [t for t in targets if not re.match(r"^[a-z]+:|^#", t)]
    assert relative, "the front page should link the docs"
    missing = [t for t in relative if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_keeps_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in readme
    assert "make test" in readme


def test_serving_page_lists_every_setting() -> None:
    """Each ``OPSLINE_*`` variable the server reads has a row in the settings table."""
    from opsline.serving.settings import ServingSettings

    page = (ROOT / "docs" / "serving" / "index.md").read_text(encoding="utf-8")
    missing = [
        f"OPSLINE_{name.upper()}"
        for name in ServingSettings.model_fields
        if f"OPSLINE_{name.upper()}" not in page
    ]
    assert not missing, f"docs/serving/index.md lacks {missing}"
