"""House-price valuation (an AVM) on the Ames housing data: MLP and LightGBM side by side.

Importing this module is cheap (pydantic only): data, training and serving code, and the
heavy libraries behind them, are imported inside the methods that use them.

Module map: ``config`` (typed model settings) · ``data`` (load, clean, split) · ``checks``
(pandera rules) · ``features`` (engineering + JSON preprocessing) · ``network``/``mlp``
(Lightning MLP) · ``gbm`` (LightGBM) · ``card`` (opsline_model.json) · ``plan`` (compiled
request preprocessing) · ``predictor`` · ``onnx_export`` · ``metrics`` · ``schemas`` · ``ui`` ·
``monitoring`` (drift features, live quality, feedback rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opsline.data.validation import Checks
from opsline.errors import UsageError
from opsline.recipes.base import Evaluation, Recipe, Scalar, TrainedModel
from opsline.recipes.house_price.config import MODEL_CONFIGS
from opsline.recipes.house_price.schemas import (
    TYPICAL_HOUSE,
    HousePriceRequest,
    HousePriceResponse,
)
from opsline.recipes.registry import register_recipe

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.export.parity import ParityRecord
    from opsline.recipes.house_price.predictor import HousePricePredictor

MODEL_KINDS = ("mlp", "gbm")


@register_recipe
class HousePriceRecipe(Recipe):
    """Predict the sale price of a house in Ames, Iowa."""

    name = "house_price"
    description = "House-price valuation (AVM) on Ames housing: PyTorch MLP vs LightGBM."
    primary_metric = "rmsle"
    greater_is_better = False
    Request = HousePriceRequest
    Response = HousePriceResponse
    model_schema = MODEL_CONFIGS

    # -- data -------------------------------------------------------------------------
    def prepare(self, cfg: Any) -> dict[str, pd.DataFrame]:
        from opsline.recipes.house_price.data import prepare

        return prepare(cfg)

    def checks(self, cfg: Any) -> Checks:
        from opsline.recipes.house_price.checks import checks

        return checks(cfg)

    # -- training ---------------------------------------------------------------------
    def train(self, cfg: Any, dataset: Any, run: Any, out_dir: Path) -> TrainedModel:
        kind = cfg.model.get("name") if cfg.get("model") is not None else None
        if kind == "mlp":
            from opsline.recipes.house_price.mlp import train_mlp

            return train_mlp(cfg, dataset, run, Path(out_dir))
        if kind == "gbm":
            from opsline.recipes.house_price.gbm import train_gbm

            return train_gbm(cfg, dataset, run, Path(out_dir))
        raise UsageError(
            f"Unknown house_price model {kind!r}. Valid models: {', '.join(MODEL_KINDS)}."
        )

    def evaluate(self, cfg: Any, predictor: Any, frame: pd.DataFrame) -> Evaluation:
        from opsline.recipes.house_price.data import TARGET
        from opsline.recipes.house_price.metrics import figures, regression_metrics

        actual = frame[TARGET].to_numpy(dtype=float)
        predicted = predictor.predict_frame(frame)
        return Evaluation(
            metrics=regression_metrics(actual, predicted), figures=figures(actual, predicted)
        )

    # -- serving ----------------------------------------------------------------------
    def load_predictor(self, model_dir: Path, backend: str = "auto") -> HousePricePredictor:
        from opsline.recipes.house_price.predictor import load_predictor

        return load_predictor(Path(model_dir), backend)

    def export_onnx(self, cfg: Any, model_dir: Path, dataset: Any) -> ParityRecord:
        """``model.onnx`` (MLP via torch.onnx, GBM via onnxmltools) + the test-split parity
        check; a failure is a failed record, never an exception."""
        from opsline.recipes.house_price.onnx_export import export_onnx

        return export_onnx(Path(model_dir), dataset)

    # -- monitoring (see ``monitoring``) ---------------------------------------------------
    #: Train rows predicted at registration for the drift reference (GBM: ~0.1 s for 1000).
    reference_rows: ClassVar[int] = 1000
    #: Feedback is the sale price in US dollars.
    feedback_type: ClassVar[type | None] = float
    request_in_features: ClassVar[bool] = True  # every request field, by name

    def monitored_features(
        self, requests: Sequence[Any], responses: Sequence[Any]
    ) -> list[dict[str, Scalar]]:
        from opsline.recipes.house_price.monitoring import monitored_features

        return monitored_features(requests, responses)

    def requests_from_frame(self, frame: pd.DataFrame) -> list[HousePriceRequest]:
        from opsline.recipes.house_price.monitoring import requests_from_frame

        return requests_from_frame(frame)

    def live_quality(
        self, predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]
    ) -> dict[str, float]:
        from opsline.recipes.house_price.monitoring import live_quality

        return live_quality(predictions, actuals)

    def feedback_frame(
        self, requests: Sequence[dict[str, Any]], actuals: Sequence[Any]
    ) -> pd.DataFrame:
        from opsline.recipes.house_price.monitoring import feedback_frame

        return feedback_frame(requests, actuals)

    def ui(self, predict: Callable[[list[HousePriceRequest]], list[HousePriceResponse]]) -> Any:
        from opsline.recipes.house_price.ui import build_ui

        return build_ui(predict)

    def sample_requests(self) -> list[HousePriceRequest]:
        return sample_requests()


def sample_requests() -> list[HousePriceRequest]:
    """A typical, a small and a large Ames house (also used by smoke and load tests)."""
    return [
        HousePriceRequest(**TYPICAL_HOUSE),
        HousePriceRequest(
            neighborhood="OldTown",
            gr_liv_area=864,
            overall_qual=4,
            year_built=1925,
            overall_cond=5,
            total_bsmt_sf=600,
            garage_cars=1,
            full_bath=1,
            bedroom_abvgr=2,
            lot_area=6000,
            kitchen_qual="Fa",
            exter_qual="TA",
            central_air="N",
        ),
        HousePriceRequest(
            neighborhood="NridgHt",
            gr_liv_area=2650,
            overall_qual=9,
            year_built=2006,
            year_remod_add=2007,
            total_bsmt_sf=1800,
            garage_cars=3,
            garage_area=850,
            full_bath=2,
            half_bath=1,
            bedroom_abvgr=4,
            fireplaces=1,
            lot_area=13000,
            kitchen_qual="Ex",
            exter_qual="Ex",
            bsmt_qual="Ex",
        ),
    ]


__all__ = ["HousePriceRecipe", "HousePriceRequest", "HousePriceResponse", "sample_requests"]
