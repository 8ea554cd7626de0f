"""The model server: a FastAPI app built by :func:`opsline.serving.app.create_app`.

``serve``, ``create_app`` and ``ServingSettings`` are importable from here, but lazily: the
CLI imports this package, and FastAPI/Gradio must only load when a server actually starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from opsline.serving.app import create_app, serve
    from opsline.serving.settings import ServingSettings

__all__ = ["ServingSettings", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        from opsline.serving import app

        return getattr(app, name)
    if name == "ServingSettings":
        from opsline.serving.settings import ServingSettings

        return ServingSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
