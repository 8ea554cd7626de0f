"""The recipe extension point: everything task-specific lives behind this contract.

A recipe is a class registered with :func:`opsline.recipes.registry.register_recipe`. The
core (CLI, pipeline, tracking, serving) only ever talks to recipes through the methods
below, so adding a task means adding one folder under ``recipes/`` and one
``configs/recipe/<name>.yaml`` (plus its model settings' dataclass, ``model_schema``).

Heavy libraries (torch, gradio, pandera …) are imported inside the methods that need them,
so importing a recipe module stays cheap and ``opsline --help`` stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    from omegaconf import DictConfig
    from pydantic import BaseModel

    from opsline.data.dataset import Dataset
    from opsline.data.validation import Checks
    from opsline.export.parity import ParityRecord
    from opsline.tracking.runs import TrainingRun

#: What a monitored feature may be: numbers for numeric drift tests, strings for categories.
Scalar = float | int | str | bool | None


@dataclass
class TrainedModel:
    """What ``Recipe.train`` hands back to the core.

    Attributes:
        model_dir: directory with everything the server needs (weights as safetensors /
            ONNX / native text formats, preprocessing as JSON, and ``opsline_model.json``).
            Never a pickle.
        kind: short model-kind name (e.g. ``mlp``, ``gbm``), also written in the model card.
    """

    model_dir: Path
    kind: str


@dataclass
class Evaluation:
    """Task metrics for one split, plus figures to log as artifacts.

    ``metrics`` keys are bare names (``rmsle``, ``within_10pct`` …); the core prefixes
    them with the split name when logging (``test_rmsle``).
    """

    metrics: dict[str, float]
    figures: dict[str, Any] = field(default_factory=dict)  # file name -> matplotlib Figure
    texts: dict[str, str] = field(default_factory=dict)  # file name -> text (JSON reports …)


@runtime_checkable
class HasPredictedValue(Protocol):
    """A ``Response`` that exposes one number per prediction (a price, a top probability, an
    output length): the server's ``opsline_predicted_value`` histogram observes it. Opt in
    with a float field or property named ``predicted_value``."""

    @property
    def predicted_value(self) -> float: ...


class Predictor(ABC):
    """Batch-oriented inference: a list of requests in, a list of responses out.

    The split into ``preprocess`` / ``forward`` / ``postprocess`` lets the server
    micro-batch many requests into one ``forward`` call and lets an ONNX Runtime backend
    replace ``forward`` without touching the recipe's pre- and post-processing.

    The server calls ``predict`` from one batcher per loaded model (never concurrently for
    the same predictor unless ``schedules_itself``): concurrent HTTP requests are queued and
    handed over as one list. What a predictor may declare to shape that:

    * ``max_batch_size`` — the largest batch worth running at once (rows); the server's
      ``OPSLINE_BATCH_MAX_SIZE`` caps it further;
    * ``batch_key(request)`` — requests with different keys never share a batch (translation
      groups by decoding options);
    * ``schedules_itself`` — the predictor batches concurrent calls on its own (text
      generation's continuous-batching engine): the batcher then passes each request
      straight through, up to ``max_concurrency`` at once.
    """

    #: Human-readable description of the loaded model, e.g. ``{"kind": "mlp"}``.
    info: dict[str, Any]
    #: Which backend runs ``forward``: ``native`` (torch / LightGBM …), ``onnx`` (ONNX
    #: Runtime) or ``int8`` (translation's dynamic quantization); shown by ``GET /model``.
    backend: str = "native"
    #: Largest batch (rows) worth one ``predict`` call; ``None`` = the server's setting.
    max_batch_size: int | None = None
    #: Concurrent ``predict`` calls allowed when ``schedules_itself`` (the engine's batch).
    max_concurrency: int | None = None
    #: The predictor batches concurrent requests itself; the batcher must not merge them.
    schedules_itself: bool = False

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path) -> Predictor:
        """Load from an exported model directory; raise ``ModelLoadError`` if unusable."""

    @abstractmethod
    def preprocess(self, requests: Sequence[BaseModel]) -> Any:
        """Turn validated requests into one model-ready batch."""

    @abstractmethod
    def forward(self, batch: Any) -> Any:
        """Run the model on one batch."""

    @abstractmethod
    def postprocess(self, outputs: Any, requests: Sequence[BaseModel]) -> list[BaseModel]:
        """Turn raw model outputs into one response per request, in order."""

    def predict(self, requests: Sequence[BaseModel]) -> list[BaseModel]:
        """Convenience: the three stages in a row."""
        return self.postprocess(self.forward(self.preprocess(requests)), requests)

    def batch_key(self, request: BaseModel) -> Hashable:
        """Requests whose keys differ are never batched together. Default: all alike."""
        return None

    # -- streaming (only when the recipe sets ``streams = True``) ----------------------
    def check(self, request: BaseModel) -> Any:
        """Refuse (``InvalidRequestError``) what the model cannot serve before a stream
        starts; returns what it prepared (e.g. token ids) for :meth:`stream`."""
        return None

    def stream(self, request: BaseModel, prepared: Any = None) -> Any:
        """An iterable of text pieces with ``.result`` at the end and ``.cancel()``."""
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def bind_metrics(self, metrics: Any) -> None:  # noqa: B027 (optional hook: empty on purpose)
        """Called by the server after loading with its ``ServingMetrics``, for predictors
        that report their own figures (decode steps, tokens/s). Default: nothing."""

    def close(self) -> None:  # noqa: B027 (optional hook: empty on purpose)
        """Called when the server stops, for predictors owning threads or processes (the
        text-generation engine). Default: nothing."""


class Recipe(ABC):
    """Everything task-specific. Subclass, set the class attributes, register."""

    #: Registry name, also the registered-model name in MLflow and ``configs/recipe/<name>``.
    name: ClassVar[str]
    #: One-line description shown by ``opsline recipes``.
    description: ClassVar[str] = ""
    #: Metric (on the test split) the promotion gate compares, and its direction.
    primary_metric: ClassVar[str]
    greater_is_better: ClassVar[bool] = False

    #: The typed schema of the ``model`` config group: one dataclass for every model of
    #: the recipe, or one per model kind keyed by ``model.name`` (a name not in the mapping
    #: is refused). :func:`opsline.config.load_config` checks the composed ``model`` node
    #: against it; the recipe reads it with :func:`opsline.config.settings`. ``None``: no
    #: schema, the node is not checked.
    model_schema: ClassVar[type | Mapping[str, type] | None] = None

    def model_name(self, cfg: DictConfig) -> str:
        """Registered-model name (and dataset folder) for this config; the recipe name by
        default. A recipe serving several data sources returns one name per source."""
        return self.name

    # -- data -------------------------------------------------------------------------
    def manifest_extras(self, cfg: DictConfig, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
        """Recipe-specific facts for ``manifest.json`` under ``extras`` (e.g. class counts);
        not part of the data version. Default: none."""
        return {}

    @abstractmethod
    def prepare(self, cfg: DictConfig) -> dict[str, pd.DataFrame]:
        """Load raw data, clean it, split it deterministically: split name -> frame.

        Must contain ``train``, ``val`` and ``test``. The core writes Parquet files and the
        manifest (row counts, column stats, content hash = data version).
        """

    @abstractmethod
    def checks(self, cfg: DictConfig) -> Checks:
        """The validation rules for the prepared dataset."""

    # -- training ---------------------------------------------------------------------
    @abstractmethod
    def train(
        self, cfg: DictConfig, dataset: Dataset, run: TrainingRun, out_dir: Path
    ) -> TrainedModel:
        """Fit the model chosen by ``cfg.model`` and export it into ``out_dir``.

        Per-epoch metrics go to ``run.log_metrics``. The core evaluates, logs and
        registers the exported directory afterwards.
        """

    @abstractmethod
    def evaluate(self, cfg: DictConfig, predictor: Predictor, frame: pd.DataFrame) -> Evaluation:
        """Task metrics of ``predictor`` on one split's frame."""

    # -- serving ----------------------------------------------------------------------
    Request: ClassVar[type[BaseModel]]
    Response: ClassVar[type[BaseModel]]

    #: ``POST /predict`` also accepts a multipart file upload (``request_from_upload``).
    accepts_files: ClassVar[bool] = False
    #: ``POST /predict/stream`` exists (the predictor implements ``check`` and ``stream``).
    streams: ClassVar[bool] = False
    #: Histogram buckets for ``opsline_predicted_value`` (``None`` = wide defaults); only
    #: used when ``Response`` is :class:`HasPredictedValue`.
    predicted_value_buckets: ClassVar[Sequence[float] | None] = None

    def request_from_upload(
        self,
        filename: str | None,
        content_type: str | None,
        data: bytes,
        fields: dict[str, str] | None = None,
    ) -> BaseModel:
        """Build a ``Request`` from an uploaded file (only if ``accepts_files``); raise
        ``pydantic.ValidationError`` for bad input, like the JSON route."""
        raise NotImplementedError(f"recipe {self.name!r} does not accept file uploads")

    @abstractmethod
    def load_predictor(self, model_dir: Path, backend: str = "auto") -> Predictor:
        """Load the predictor for an exported model directory.

        ``backend``: ``auto`` (ONNX Runtime when ``model.onnx`` passed its parity check),
        ``onnx`` or ``native``; see :func:`opsline.export.backend.select_backend`. Recipes
        without an ONNX export ignore it.
        """

    def export_onnx(
        self, cfg: DictConfig, model_dir: Path, dataset: Dataset
    ) -> ParityRecord | None:
        """Write ``model.onnx`` beside the native weights in ``model_dir`` and compare it
        with the native model on the test split (:mod:`opsline.export.parity`).

        Called by the core after ``train`` and before registration; the core writes the
        record into the directory and onto the version. Return ``None`` when the recipe
        (or this model kind) has no ONNX export; a failing export returns a failed record
        (never raises), so the native model still registers.
        """
        return None

    # -- monitoring (prediction log, drift, feedback) --------------------------------------
    #: Train rows (sampled with a fixed seed) predicted at registration whose monitored
    #: features become the drift reference saved with the model; predicting them costs CPU.
    reference_rows: ClassVar[int] = 1000
    #: Store each request's JSON in the prediction log (needed to learn from feedback);
    #: ``False`` for large inputs (images): only their monitored features are kept.
    log_request_body: ClassVar[bool] = True
    #: The monitored features hold every request field (tabular recipes): the log then
    #: stores no separate request body (half the bytes per row) and feedback rebuilds the
    #: requests from the features.
    request_in_features: ClassVar[bool] = False
    #: Type of the ground truth ``POST /feedback`` accepts as ``actual`` (a price, a class
    #: label); ``None`` = the recipe takes no feedback.
    feedback_type: ClassVar[type | None] = None
    #: The data drifts when at least this share of the monitored features drifted;
    #: ``None`` = more than chance explains (:func:`opsline.monitoring.drift.chance_share`
    #: of the features tested: 2 of 4, 5 of 33). ``OPSLINE_DRIFT_SHARE`` overrides it.
    drift_share: ClassVar[float | None] = None

    def monitored_features(
        self, requests: Sequence[BaseModel], responses: Sequence[BaseModel]
    ) -> list[dict[str, Scalar]]:
        """Scalar features of each request (and its response) for the prediction log and
        drift detection: one flat dict per row, the same keys for every row. Called once
        per batch on the serving hot path: keep it cheap (no pandas). Default: none."""
        return [{} for _ in requests]

    def requests_from_frame(self, frame: pd.DataFrame) -> list[BaseModel]:
        """Rows of a prepared split as requests: the drift reference is built by predicting
        them and taking their :meth:`monitored_features`. Default: no reference."""
        raise NotImplementedError(f"recipe {self.name!r} has no drift reference")

    def live_quality(
        self, predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]
    ) -> dict[str, float]:
        """Quality of logged predictions (response JSON) against feedback ``actuals``, e.g.
        ``{"rmsle": ..., "within_10pct": ...}``; metric names as in :meth:`evaluate`."""
        return {}

    def feedback_frame(
        self, requests: Sequence[dict[str, Any]], actuals: Sequence[Any]
    ) -> pd.DataFrame:
        """Labelled production rows (request JSON + feedback) as a frame with the prepared
        splits' columns, added to the train split by ``data.include_feedback=true``."""
        raise UsageError(f"Recipe {self.name!r} cannot learn from feedback rows yet.")

    @abstractmethod
    def ui(self, predict: Callable[[list[BaseModel]], list[BaseModel]]) -> Any:
        """Build the web form (a ``gradio.Blocks``) that calls ``predict``."""

    @abstractmethod
    def sample_requests(self) -> list[BaseModel]:
        """A few realistic requests, for smoke tests, load tests and the UI defaults."""
