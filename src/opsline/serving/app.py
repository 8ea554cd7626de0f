"""The app factory and ``serve``.

``create_app(settings)`` builds a FastAPI app for one recipe; in ``lifespan`` it resolves the
model (``models:/<recipe>@production`` by default) and loads the predictor into
``app.state.model``. If there is no model yet the app still starts: ``/health`` answers,
``/ready`` and ``/predict`` return 503 saying how to train one.

Uvicorn factory mode reads the settings from ``OPSLINE_*`` environment variables::

    uvicorn opsline.serving.app:create_app --factory
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from opsline import __version__
from opsline.monitoring import live_quality
from opsline.monitoring.history import MetricsHistory
from opsline.monitoring.metrics import MetricsMiddleware, ServingMetrics
from opsline.recipes.base import Recipe
from opsline.recipes.registry import get_recipe
from opsline.serving import errors, logs
from opsline.serving.batcher import Batcher
from opsline.serving.drift_monitor import DriftMonitor
from opsline.serving.prediction_recorder import PredictionRecorder
from opsline.serving.reload import Reloader
from opsline.serving.request_id import RequestIdMiddleware
from opsline.serving.retrain_loop import RetrainLoop
from opsline.serving.routes import admin, feedback, health, jobs, metrics, model, oip, predict
from opsline.serving.routes import drift as drift_route
from opsline.serving.routes import history as history_route
from opsline.serving.routes import stream as stream_route
from opsline.serving.runtime import ModelSlot, freeze_heap, try_load_model
from opsline.serving.settings import ServingSettings
from opsline.serving.shadow import ShadowScorer
from opsline.serving.ui import UI_PATH, UI_ROOT_ROUTES, mount_ui

if TYPE_CHECKING:  # pragma: no cover
    from opsline.monitoring.policy import Policy

log = logging.getLogger(__name__)


def create_app(settings: ServingSettings | None = None, *, recipe: Recipe | None = None) -> FastAPI:
    """Build the serving app.

    Args:
        settings: server settings; ``None`` reads them from the environment.
        recipe: the recipe instance to serve; ``None`` looks up ``settings.recipe``
            (tests pass one in to serve a stand-in recipe).
    """
    settings = settings or ServingSettings()
    # Here as well as in serve(): under `uvicorn --factory` this runs after uvicorn has set
    # up its loggers, and JSON must win.
    logs.configure(settings.log_format, settings.log_level)
    recipe = recipe or get_recipe(settings.recipe)
    collectors = ServingMetrics(recipe.predicted_value_buckets)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.inference_limiter = anyio.CapacityLimiter(settings.max_concurrent_inference)
        # Jobs whose worker died with a previous server become `failed`, not forever running.
        app.state.jobs = await anyio.to_thread.run_sync(jobs.start_manager, settings)
        # Resolving may download from the registry and loading may read large weights: a
        # worker thread keeps the loop free (and startup ends when the model is ready).
        loaded = await anyio.to_thread.run_sync(try_load_model, recipe, settings, collectors)
        slot = app.state.model
        slot.model, slot.error = loaded.model, loaded.error
        if slot.model is not None:
            # A predictor that batches concurrent requests itself (text generation) must be
            # let have them all at once, not the setting's default of a few.
            if slot.model.predictor.max_concurrency:
                app.state.inference_limiter.total_tokens = slot.model.predictor.max_concurrency
            collectors.set_model(
                slot.model.name, slot.model.version, slot.model.alias, slot.model.kind
            )
        else:
            collectors.clear_model()
        if settings.prediction_log:
            await anyio.to_thread.run_sync(app.state.recorder.open)
            app.state.recorder.start()
            await app.state.refresh_quality()
        if app.state.shadow is not None:
            app.state.shadow.start()  # loads the candidate in its own thread, then scores
        freeze_heap()  # full GC passes over the loaded libraries were the p99 of /predict
        app.state.batcher.start()
        app.state.reloader.start()  # follows the alias: a promotion is a deploy
        app.state.history.start()  # samples the registry for /ui/monitor, /metrics/history
        app.state.drift.start()  # GET /drift, opsline_drift_*: off the request path
        if app.state.loop is not None:
            app.state.loop.start()  # acts on each drift check: retrain → gate → reload
        yield
        if app.state.loop is not None:  # before the drift monitor it listens to
            await app.state.loop.stop()
        await app.state.drift.stop()
        # Uvicorn has stopped accepting and waited for open requests; the batcher answers
        # whatever is still queued (SIGTERM drains) before the model is closed.
        await app.state.reloader.stop()
        await app.state.batcher.stop()
        if app.state.shadow is not None:  # scores what the last batches queued, then ends
            await anyio.to_thread.run_sync(app.state.shadow.stop)
        await app.state.recorder.stop()  # after the drain: the last batches are logged
        await app.state.history.stop()
        if slot.model is not None:
            # e.g. the text-generation engine's decoding thread: finish it, fail its waiters.
            await anyio.to_thread.run_sync(slot.model.predictor.close)

    app = FastAPI(
        title=f"opsline · {recipe.name}",
        version=__version__,
        lifespan=lifespan,
        description=recipe.description or "",
    )
    app.state.settings = settings
    app.state.recipe = recipe
    app.state.metrics = collectors
    app.state.model = ModelSlot()  # "still loading" until lifespan has run
    app.state.batcher = Batcher(
        app.state.model,
        collectors,
        max_size=settings.batch_max_size,
        max_delay_s=settings.batch_max_delay_ms / 1000,
        max_queue=settings.batch_max_queue,
    )
    app.state.reloader = Reloader(recipe, settings, app.state.model, app.state.batcher, collectors)
    app.state.drift = DriftMonitor(recipe, settings, app.state.model, collectors.registry)
    app.state.inference_limiter = None
    # The prediction log commits each batch's rows before the batch is answered.
    app.state.recorder = PredictionRecorder(recipe, settings, collectors)
    if settings.prediction_log:
        app.state.batcher.hooks.append(app.state.recorder)
    # A candidate scoring every batch off the response path (after the recorder: the
    # primary's rows are committed first); its answers are logged, never returned.
    app.state.shadow = None
    if settings.shadow_model_uri:
        app.state.shadow = ShadowScorer(recipe, settings, app.state.recorder, collectors)
        app.state.batcher.hooks.append(app.state.shadow)
    app.state.quality = live_quality.LiveQuality()
    # Other monitors (drift, the retrain policy, a shadow model) add a describe() here to
    # appear under `monitoring` in GET /model.
    app.state.monitoring_views = {}
    if app.state.shadow is not None:
        app.state.monitoring_views["shadow"] = app.state.shadow.describe
    app.state.monitoring_views["drift"] = app.state.drift.describe
    # The retrain loop: drift checks and live quality → policy → retrain job → gate →
    # hot reload. Needs the log (its evidence); the policy is read once, here, so a bad
    # name fails at startup rather than at the first drift.
    app.state.loop = None
    policy = _retrain_policy(settings, recipe)
    if policy is not None and settings.prediction_log:
        app.state.loop = RetrainLoop(app, recipe, policy)
        app.state.monitoring_views["loop"] = app.state.loop.describe

    async def refresh_quality() -> live_quality.LiveQuality:
        """Recompute the live quality of the served model from feedback (off the loop)."""
        slot, log_store = app.state.model, app.state.recorder.log
        quality: live_quality.LiveQuality = app.state.quality
        if slot.model is None or log_store is None:
            return quality
        try:
            app.state.quality = await anyio.to_thread.run_sync(
                live_quality.compute,
                recipe,
                log_store,
                slot.model.name,
                settings.quality_window,
                slot.model.version,
            )
        except Exception:  # a failing store: keep the last figures, say so in the log
            log.warning("Could not compute the live quality", exc_info=True)
        quality = app.state.quality
        live_quality.publish(quality, collectors)
        return quality

    app.state.refresh_quality = refresh_quality
    # The UI mount and the scrape endpoints are the monitoring's own traffic, not the API's.
    app.state.history = MetricsHistory(
        collectors.registry,
        interval=settings.history_interval_seconds,
        ignored_routes=(UI_PATH, *UI_ROOT_ROUTES, "/metrics", "/metrics/history"),
    )

    errors.install(app)
    app.include_router(health.router)
    app.include_router(model.router)
    app.include_router(
        predict.build_router(recipe, settings.max_batch_size, settings.max_body_bytes)
    )
    app.include_router(stream_route.build_router(recipe, settings.max_body_bytes))
    app.include_router(history_route.router)
    app.include_router(metrics.router)
    app.include_router(jobs.router)
    app.include_router(oip.build_router(recipe, settings.max_batch_size, settings.max_body_bytes))
    app.include_router(admin.router)
    app.include_router(drift_route.router)
    app.include_router(feedback.build_router(recipe, settings.max_body_bytes))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/" if settings.ui else "/docs")

    if settings.ui:
        mount_ui(app, recipe, UI_PATH)
    app.add_middleware(
        MetricsMiddleware, metrics=collectors, mounts=[UI_PATH] if settings.ui else []
    )
    app.add_middleware(RequestIdMiddleware)  # outermost: every response carries the id
    return app


def _retrain_policy(settings: ServingSettings, recipe: Recipe) -> Policy | None:
    from opsline.monitoring.policy import load_policy

    name = settings.retrain_policy.strip()
    return load_policy(None if name == "auto" else name, recipe.name)


def serve(settings: ServingSettings | None = None) -> None:
    """Run the app with uvicorn on ``settings.host:settings.port`` (blocks until stopped)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    settings = settings or ServingSettings()
    app = create_app(settings)
    # uvicorn applies its log_config when it starts: give it the JSON one, or its default.
    log_config = logs.configure(settings.log_format, settings.log_level)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config if log_config is not None else LOGGING_CONFIG,
    )
