"""MkDocs hook: render the ``opsline`` command line into ``reference/cli.md`` at build time.

The page in the repository holds only a marker; every build replaces it with each command's
help, usage, arguments and options, read from the Typer app itself (through the Click command
API that Typer builds on; recent Typer vendors its own copy of Click, so the code duck-types
rather than checking ``isinstance(..., click.Group)``), so the reference can never drift
from the code. Groups (``opsline data``,
``opsline monitor`` …) are rendered with each of their sub-commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mkdocs.structure.pages import Page

PAGE = "reference/cli.md"
MARKER = "<!-- opsline-cli-reference -->"


def root_command() -> Any:
    """The Click group behind ``opsline`` (imported here: the hook runs inside mkdocs)."""
    import typer

    from opsline.cli import app

    return typer.main.get_command(app)


def is_group(command: Any) -> bool:
    """Whether a command has sub-commands (``opsline data``, ``opsline monitor`` …)."""
    return hasattr(command, "list_commands")


def context(command: Any, name: str, parent: Any = None) -> Any:
    """A help-rendering context for ``command`` invoked as ``name`` under ``parent``."""
    return command.context_class(command, info_name=name, parent=parent)


def subcommands(group: Any, ctx: Any) -> list[tuple[str, Any]]:
    """A group's visible sub-commands, in the app's order."""
    found = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    return [
        (name, command) for name, command in found if command is not None and not command.hidden
    ]


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _help_paragraphs(text: str) -> str:
    # Click's "\b" marks a paragraph it must not rewrap; Markdown needs no such hint.
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b").strip()


def render_command(command: Any, ctx: Any, level: int) -> str:
    """One command's section: heading, help, usage, then arguments and options tables."""
    path = ctx.command_path
    parts = [f"{'#' * level} `{path}`", ""]
    if command.help:
        parts += [_help_paragraphs(command.help), ""]
    usage = " ".join(command.collect_usage_pieces(ctx))
    parts += ["```text", f"{path} {usage}".rstrip(), "```", ""]
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record: Any = param.get_help_record(ctx)
        is_argument = param.param_type_name == "argument"
        if record is None and is_argument:
            record = (param.make_metavar(ctx), "")
        if record is None:
            continue
        (arguments if is_argument else options).append(record)
    for title, rows in (("Argument", arguments), ("Option", options)):
        if rows:
            parts += [f"| {title} | Description |", "|---|---|"]
            parts += [f"| `{_cell(name)}` | {_cell(help_text)} |" for name, help_text in rows]
            parts.append("")
    if is_group(command):
        children = subcommands(command, ctx)
        parts += [_summary(children, path), ""]
        for name, sub in children:
            parts.append(render_command(sub, context(sub, name, ctx), level + 1))
    return "\n".join(parts)


def _summary(children: list[tuple[str, Any]], path: str) -> str:
    rows = ["| Command | What |", "|---|---|"]
    for name, sub in children:
        link = _slug(f"{path} {name}")
        rows.append(f"| [`{name}`](#{link}) | {_cell(sub.get_short_help_str(120))} |")
    return "\n".join(rows)


def _slug(heading: str) -> str:
    # Python-Markdown's toc slugify of "`opsline data prepare`": lower case, spaces to dashes.
    return "-".join(heading.lower().split())


def render() -> str:
    """The whole reference: the top-level help, then every command."""
    root = root_command()
    ctx = context(root, "opsline")
    children = subcommands(root, ctx)
    sections = [render_command(sub, context(sub, name, ctx), 2) for name, sub in children]
    return "\n".join(
        [_help_paragraphs(root.help or ""), "", _summary(children, "opsline"), "", *sections]
    )


def on_page_markdown(markdown: str, page: Page, **_: Any) -> str:
    """Replace the marker on the CLI page with the rendered reference."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker {MARKER}")
    return markdown.replace(MARKER, render())
