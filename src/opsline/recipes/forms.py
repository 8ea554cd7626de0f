"""Helpers shared by the recipes' Gradio forms (``recipes/<name>/ui.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import ValidationError


def validation_message(error: ValidationError) -> str:
    """One line per problem, naming the field: ``- **top_p**: Input should be …``.

    The form shows it as Markdown instead of raising, so a bad value reads like the API's
    422 (same field names, same reasons) rather than a generic error toast.
    """
    lines = [
        f"- **{'.'.join(str(p) for p in e.get('loc', ())) or 'request'}**: "
        f"{e.get('msg', 'invalid value')}"
        for e in error.errors()
    ]
    return "Please check the form:\n" + "\n".join(lines)
