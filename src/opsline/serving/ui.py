"""The recipe's Gradio form, mounted at ``/ui`` and predicting with the app's loaded model."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from opsline.serving.runtime import predict_sync

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI
    from pydantic import BaseModel

    from opsline.recipes.base import Recipe

UI_PATH = "/ui"


def mount_ui(app: FastAPI, recipe: Recipe, path: str = UI_PATH) -> None:
    """Build ``recipe.ui(predict)`` and mount it on ``app`` at ``path``.

    ``predict`` reads ``app.state.model`` at call time, so the form always uses whatever
    model the app currently serves, and counts in the same inference metrics as the API.
    """
    # A server must not phone home; set before gradio is imported (it reads env at import).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio

    def predict(requests: list[BaseModel]) -> list[BaseModel]:
        slot = app.state.model
        if slot.model is None:
            # gradio.Error is shown to the user as a readable message in the page.
            raise gradio.Error(slot.error or "No model is loaded.", title="No model")
        return predict_sync(slot.model, requests, app.state.metrics)

    blocks = recipe.ui(predict)
    # ssr off: no Node server; run history off: the server must not keep users' inputs.
    # The default theme uses fonts bundled with gradio, so the page also works offline.
    gradio.mount_gradio_app(app, blocks, path=path, ssr_mode=False, run_history=False,
                            footer_links=["api"], mcp_server=False, enable_monitoring=False)
