"""MkDocs hook: turn Sphinx roles left in Google-style docstrings into cross-references.

Docstrings in ``src/`` name other objects the Sphinx way (``:func:`opsline.x.y```); Markdown
renders that as the literal role followed by code. This hook rewrites each one into an
mkdocs-autorefs reference marked optional: a name documented on this site becomes a link
(a relative name such as ``get_recipe`` is first matched against the objects documented on
the same page), anything else (an undocumented module) stays plain code, never a warning.
``~a.b.c`` shows ``c``, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)</code>")
# Anchors mkdocstrings gives the objects it renders: id="opsline.recipes.registry.get_recipe".
DOCUMENTED = re.compile(r'id="(opsline(?:\.\w+)+)"')


def on_page_content(html: str, **_: Any) -> str:
    """Rewrite the roles on every page (only API pages have any)."""
    documented = set(DOCUMENTED.findall(html))

    def reference(match: re.Match[str]) -> str:
        short, identifier = match.group(1), match.group(2)
        shown = identifier.rsplit(".", 1)[-1] if short else identifier
        if "." not in identifier or not identifier.startswith("opsline"):
            # A relative name: the one object on this page it can mean, if exactly one.
            found = [full for full in documented if full.endswith("." + identifier)]
            identifier = found[0] if len(found) == 1 else identifier
        return f'<autoref optional identifier="{identifier}"><code>{shown}</code></autoref>'

    return ROLE.sub(reference, html)
