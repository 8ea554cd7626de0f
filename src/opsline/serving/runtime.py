"""Loading the served model into ``app.state`` and running inference off the event loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import InvalidRequestError, ModelLoadError, OpslineError

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from opsline.monitoring.metrics import ServingMetrics
    from opsline.recipes.base import Predictor, Recipe
    from opsline.serving.settings import ServingSettings

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A predictor plus what the registry knows about it (shown by ``GET /model``)."""

    predictor: Predictor
    name: str
    uri: str
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    data_version: str | None = None
    kind: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    #: The local model directory (the drift reference ``reference.parquet`` lives there).
    model_dir: Path | None = None
    #: Batches / streams running on this model now (changed on the event loop only); a
    #: hot reload closes the replaced model when it reaches 0.
    inflight: int = 0

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the model."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "uri": self.uri,
            "run_id": self.run_id,
            "data_version": self.data_version,
            "kind": self.kind,
            "metrics": dict(self.metrics),
            "predictor": {**(self.predictor.info or {}), "backend": self.predictor.backend},
        }


@dataclass
class ModelSlot:
    """What ``app.state.model`` holds: the loaded model, or why there is none."""

    model: LoadedModel | None = None
    error: str | None = "The model is still loading."


def load_model(recipe: Recipe, settings: ServingSettings) -> LoadedModel:
    """Resolve ``settings.model_uri`` in the registry and load the recipe's predictor.

    Raises:
        NoModelError: nothing registered or aliased yet (message says how to train one).
        ModelLoadError: the files exist but the recipe cannot load them.
    """
    from opsline.tracking.registry import resolve_model

    uri = settings.resolved_model_uri
    ref = resolve_model(recipe.name, uri, settings.tracking_uri)
    try:
        predictor = recipe.load_predictor(ref.local_dir, backend=settings.backend)
    except OpslineError:
        raise
    except Exception as error:  # a broken/mismatched directory: say which and why
        raise ModelLoadError(
            f"Could not load {uri} ({ref.local_dir}) with recipe {recipe.name!r}: {error}"
        ) from error
    info = predictor.info or {}
    return LoadedModel(
        predictor=predictor,
        name=ref.name,
        uri=uri,
        version=ref.version,
        alias=ref.alias,
        run_id=ref.run_id,
        data_version=ref.data_version,
        kind=ref.kind or info.get("kind"),
        metrics=dict(ref.metrics),
        model_dir=Path(ref.local_dir),
    )


def try_load_model(
    recipe: Recipe, settings: ServingSettings, metrics: ServingMetrics | None = None
) -> ModelSlot:
    """:func:`load_model`, but a failure becomes a readable reason instead of an exception.

    The app must start without a model (``/health`` answers, ``/ready`` says why not).
    ``metrics``, if given, is bound to the predictor (``Predictor.bind_metrics``).
    """
    try:
        model = load_model(recipe, settings)
        if metrics is not None:
            model.predictor.bind_metrics(metrics)
    except OpslineError as error:
        reason = str(error)
        if "opsline" not in reason:  # every reason should say what to do next
            reason += f" Train and register one with `opsline run {recipe.name}`."
        log.warning("Serving without a model: %s", reason)
        return ModelSlot(error=reason)
    except Exception as error:
        log.exception("Loading the model %s failed", settings.resolved_model_uri)
        return ModelSlot(
            error=f"Loading the model {settings.resolved_model_uri} failed "
            f"({type(error).__name__}: {error}); see the server log."
        )
    log.info("Serving %s version %s (%s)", model.name, model.version, model.uri)
    return ModelSlot(model=model)


def predict_sync(
    model: LoadedModel, requests: Sequence[BaseModel], metrics: ServingMetrics | None
) -> list[BaseModel]:
    """Run ``predictor.predict`` and record inference metrics (call from a worker thread)."""
    start = time.perf_counter()
    try:
        responses = list(model.predictor.predict(list(requests)))
    except InvalidRequestError:  # the client's mistake (a 422), not a failing model
        raise
    except Exception:
        if metrics is not None:
            metrics.inference_errors.inc()
        raise
    elapsed = time.perf_counter() - start
    if len(responses) != len(requests):
        raise RuntimeError(
            f"predictor returned {len(responses)} responses for {len(requests)} requests"
        )
    if metrics is not None:
        metrics.observe_inference(elapsed, len(requests))
        metrics.observe_predictions(responses)
    return responses


def freeze_heap() -> None:
    """Move everything alive now (libraries, the model) out of the garbage collector's sight.

    A serving process holds ~300k long-lived objects (mlflow, sqlalchemy, pandas, the model);
    each full collection walks them all (~200 ms on the benchmark machine), which showed up
    as the p99 of ``/predict``. After loading, those objects never become garbage, so they are
    frozen (``gc.freeze``, as Instagram's and CPython's docs suggest for pre-fork servers);
    request objects are still collected as usual.
    """
    import gc

    gc.collect()
    gc.freeze()
