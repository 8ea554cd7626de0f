"""MkDocs hook: turn Sphinx roles left in Google-style docstrings into cross-references.

Docstrings in ``src/`` name other objects the Sphinx way (``:func:`opsline.x.y```); Markdown
renders that as the literal role followed by code. This hook rewrites each one into an
mkdocs-autorefs reference marked optional: a fully qualified name documented on this site
becomes a link, anything else (a relative name, an undocumented module) stays plain code,
never a warning. ``~a.b.c`` shows ``c``, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)</code>")


def _reference(match: re.Match[str]) -> str:
    short, identifier = match.group(1), match.group(2)
    shown = identifier.rsplit(".", 1)[-1] if short else identifier
    return f'<autoref optional identifier="{identifier}"><code>{shown}</code></autoref>'


def on_page_content(html: str, **_: Any) -> str:
    """Rewrite the roles on every page (only API pages have any)."""
    return ROLE.sub(_reference, html)
