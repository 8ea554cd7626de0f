"""The recipe's Gradio form, mounted at ``/ui`` and predicting with the app's loaded model.

When the app has a metrics sampler (``app.state.history``) the same Gradio app gets a second
page, the live monitoring view at ``/ui/monitor`` (``/monitoring`` redirects there; see
:mod:`opsline.serving.monitoring_page`). With a drift monitor (``app.state.drift``) a third
page, ``/ui/drift``, shows the latest drift check (:mod:`opsline.serving.drift_page`).
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI
    from pydantic import BaseModel

    from opsline.recipes.base import Recipe

UI_PATH = "/ui"
# Root-level routes mount_ui adds: browser and monitoring-page traffic, not API traffic.
UI_ROOT_ROUTES = ("/monitoring", "/favicon.ico")


def mount_ui(app: FastAPI, recipe: Recipe, path: str = UI_PATH) -> None:
    """Build ``recipe.ui(predict)`` and mount it on ``app`` at ``path``.

    ``predict`` goes through the app's batcher, so the form always uses whatever model the
    app currently serves and counts in the same inference metrics as the API.
    If ``app.state.history`` is set, the monitoring page is added at ``path + "/monitor"``
    and ``GET /monitoring`` redirects to it.
    """
    # A server must not phone home; set before gradio is imported (it reads env at import).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import asyncio

    import gradio
    from fastapi.responses import RedirectResponse

    def predict(requests: list[BaseModel]) -> list[BaseModel]:
        slot = app.state.model
        if slot.model is None:
            # gradio.Error is shown to the user as a readable message in the page.
            raise gradio.Error(slot.error or "No model is loaded.", title="No model")
        # Gradio calls this in its own worker thread; the form's rows join the API's
        # batches (and their metrics) on the server's event loop.
        batcher = app.state.batcher
        answer = asyncio.run_coroutine_threadsafe(batcher.submit(requests), batcher.loop)
        responses: list[BaseModel] = answer.result()
        return responses

    blocks = recipe.ui(predict)
    history = getattr(app.state, "history", None)
    if history is not None:
        from opsline.serving.monitoring_page import MONITORING_PATH, add_monitoring_page

        add_monitoring_page(blocks, history, path=MONITORING_PATH)
        page_url = path.rstrip("/") + MONITORING_PATH
        app.add_api_route(
            "/monitoring", lambda: RedirectResponse(page_url), include_in_schema=False
        )
    drift = getattr(app.state, "drift", None)
    if drift is not None:  # the latest drift check and Evidently's report at /ui/drift
        from opsline.serving.drift_page import add_drift_page

        add_drift_page(blocks, drift)
    # Browsers ask the site root for an icon; without this every page view logs a 404.
    icon_url = path.rstrip("/") + "/favicon.ico"
    app.add_api_route("/favicon.ico", lambda: RedirectResponse(icon_url), include_in_schema=False)
    # ssr off: no Node server; run history off: the server must not keep users' inputs.
    # The default theme uses fonts bundled with gradio, so the page also works offline.
    with warnings.catch_warnings():
        # Gradio warns that SSR is off for multipage apps even when ssr_mode=False asks it.
        warnings.filterwarnings("ignore", message="SSR mode is not supported", category=UserWarning)
        gradio.mount_gradio_app(
            app,
            blocks,
            path=path,
            ssr_mode=False,
            run_history=False,
            footer_links=["api"],
            mcp_server=False,
            enable_monitoring=False,
        )
