"""The recipe extension point: everything task-specific lives behind this contract.

A recipe is a class registered with :func:`register_recipe`. The core (CLI, pipeline,
tracking, serving) only ever talks to recipes through the methods below, so adding a task
means adding one folder under ``recipes/`` and one ``configs/recipe/<name>.yaml``.

Heavy libraries (torch, gradio, pandera …) are imported inside the methods that need them,
so importing a recipe module stays cheap and ``opsline --help`` stays fast.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    from omegaconf import DictConfig
    from pydantic import BaseModel

    from opsline.data.dataset import Dataset
    from opsline.tracking.runs import RunHandle

# Name of the JSON file every exported model directory carries; the server reads it to
# know which recipe (and which model kind inside the recipe) can load the directory.
MODEL_CARD_FILE = "opsline_model.json"


@dataclass
class Checks:
    """Validation rules for a prepared dataset (run by ``opsline.data.validation``).

    Attributes:
        schema: a ``pandera.DataFrameSchema`` applied to every split.
        key: column that identifies one record; the runner checks no key is in two splits.
        min_rows: minimum row count per split name.
        max_rows: maximum row count per split name (no bound for a split not named).
    """

    schema: Any
    key: str | None = None
    min_rows: dict[str, int] = field(default_factory=dict)
    max_rows: dict[str, int] = field(default_factory=dict)


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


class Predictor(ABC):
    """Batch-oriented inference: a list of requests in, a list of responses out.

    The split into ``preprocess`` / ``forward`` / ``postprocess`` lets the server
    micro-batch many requests into one ``forward`` call and lets an ONNX Runtime backend
    replace ``forward`` without touching the recipe's pre- and post-processing.
    """

    #: Human-readable description of the loaded model, e.g. ``{"kind": "mlp"}``.
    info: dict[str, Any]
    #: Requests the server should let run at once (sizes its inference limiter); ``None``
    #: = the server's ``max_concurrent_inference``. A predictor that batches concurrent
    #: requests itself (text generation) declares its batch here.
    max_concurrency: int | None = None

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

    def bind_metrics(self, metrics: Any) -> None:
        """Called by the server after loading with its ``ServingMetrics``, for predictors
        that report their own figures (decode steps, tokens/s). Default: nothing."""

    def close(self) -> None:
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

    def model_name(self, cfg: DictConfig) -> str:
        """Registered-model name (and dataset folder) for this config; the recipe name by
        default. A recipe serving several data sources returns one name per source."""
        return self.name

    # -- data -------------------------------------------------------------------------
    def manifest_extras(self, cfg: DictConfig, splits: dict[str, pd.DataFrame]
                        ) -> dict[str, Any]:
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
    def train(self, cfg: DictConfig, dataset: Dataset, run: RunHandle,
              out_dir: Path) -> TrainedModel:
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

    def request_from_upload(self, filename: str | None, content_type: str | None, data: bytes,
                            fields: dict[str, str] | None = None) -> BaseModel:
        """Build a ``Request`` from an uploaded file (only if ``accepts_files``); raise
        ``pydantic.ValidationError`` for bad input, like the JSON route."""
        raise NotImplementedError(f"recipe {self.name!r} does not accept file uploads")

    @abstractmethod
    def load_predictor(self, model_dir: Path) -> Predictor:
        """Load the predictor for an exported model directory."""

    @abstractmethod
    def ui(self, predict: Callable[[list[BaseModel]], list[BaseModel]]) -> Any:
        """Build the web form (a ``gradio.Blocks``) that calls ``predict``."""

    @abstractmethod
    def sample_requests(self) -> list[BaseModel]:
        """A few realistic requests, for smoke tests, load tests and the UI defaults."""


# -- registry ---------------------------------------------------------------------------
_REGISTRY: dict[str, type[Recipe]] = {}

# Built-in recipes are imported on first lookup, not at ``import opsline``: each module is
# cheap, but this keeps ``opsline --help`` from touching any of them.
_BUILTIN_MODULES = ("opsline.recipes.house_price", "opsline.recipes.translation",
                    "opsline.recipes.image_classification", "opsline.recipes.text_generation")
_builtins_loaded = False


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator adding a recipe to the registry; a duplicate name is an error."""
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__qualname__} must set a non-empty `name`")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a recipe named {name!r} is already registered "
                         f"({_REGISTRY[name].__module__})")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def list_recipes() -> list[str]:
    """Names of all registered recipes, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_recipe(name: str) -> Recipe:
    """An instance of the recipe ``name``; ``UsageError`` listing valid names otherwise."""
    _load_builtins()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UsageError(f"Unknown recipe {name!r}. Valid recipes: "
                         f"{', '.join(sorted(_REGISTRY)) or '(none)'}.") from None
