"""Load an exported house-price model and predict, per request batch or per frame.

Two entry points share one code path:

* ``predict(requests)`` (server): ``preprocess`` -> ``forward`` -> ``postprocess``;
* ``predict_frame(frame)`` (evaluation, batch scoring): raw data rows -> prices in USD.

``forward`` maps a model-ready batch to raw model outputs (standardized log price for the
MLP, log price for the GBM) so an ONNX Runtime backend can replace it; ``to_prices``
undoes the target transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import ModelLoadError
from opsline.recipes.base import Predictor
from opsline.recipes.house_price.card import WEIGHTS, read_card
from opsline.recipes.house_price.features import Preprocessor
from opsline.recipes.house_price.schemas import HousePriceRequest, HousePriceResponse

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd


class HousePricePredictor(Predictor):
    """Common pre/post-processing; subclasses implement ``to_batch``/``forward``."""

    kind: str = ""

    def __init__(self, model_dir: Path, card: dict[str, Any], preprocessor: Preprocessor):
        self.model_dir = Path(model_dir)
        self.card = card
        self.preprocessor = preprocessor
        self.info = {"recipe": card["recipe"], "kind": card["kind"],
                     "data_version": card.get("data_version"),
                     "n_model_inputs": len(card.get("feature_schema", {}).get("model_inputs", [])),
                     "training": card.get("training", {})}

    @classmethod
    def load(cls, model_dir: Path) -> HousePricePredictor:
        """The right predictor for the directory's model kind (``ModelLoadError`` if unusable)."""
        card = read_card(model_dir, kind=cls.kind or None)
        impl = {"mlp": MLPPredictor, "gbm": GBMPredictor}[card["kind"]]
        try:
            preprocessor = Preprocessor.load(model_dir)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ModelLoadError(f"preprocessing.json in {str(model_dir)!r} is unusable: "
                                 f"{exc}.") from None
        predictor = impl(model_dir, card, preprocessor)
        predictor._load_weights()
        return predictor

    # -- subclass hooks ----------------------------------------------------------------
    def _load_weights(self) -> None:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def to_batch(self, frame: pd.DataFrame) -> Any:
        """Raw rows -> the model-ready batch ``forward`` takes."""
        raise NotImplementedError

    def to_prices(self, outputs: Any) -> np.ndarray:
        """Raw model outputs -> prices in USD."""
        raise NotImplementedError

    # -- the Predictor contract ----------------------------------------------------------
    def preprocess(self, requests: Sequence[HousePriceRequest]) -> Any:
        records = [r.record() if hasattr(r, "record") else dict(r) for r in requests]
        return self.to_batch(self.preprocessor.complete(records))

    def postprocess(self, outputs: Any, requests: Sequence[HousePriceRequest]
                    ) -> list[HousePriceResponse]:
        prices = self.to_prices(outputs)
        return [HousePriceResponse(predicted_price=round(float(price), 2),
                                   price_per_sqft=round(float(price) / float(r.gr_liv_area), 2),
                                   model_kind=self.kind)
                for price, r in zip(prices, requests, strict=True)]

    # -- frame fast path -----------------------------------------------------------------
    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Prices (USD) for the rows of a dataset frame (missing values imputed as in training)."""
        return self.to_prices(self.forward(self.to_batch(frame)))


class MLPPredictor(HousePricePredictor):
    kind = "mlp"

    def _load_weights(self) -> None:
        import torch
        from safetensors.torch import load_file

        from opsline.recipes.house_price import network

        try:
            self.network = network.build(self.card["architecture"])
            self.network.load_state_dict(load_file(str(self.model_dir / WEIGHTS["mlp"])))
        except (KeyError, RuntimeError, OSError, ValueError) as exc:
            raise ModelLoadError(f"The MLP weights in {str(self.model_dir)!r} do not match the "
                                 f"model card: {exc}") from None
        self.network.eval()
        self._torch = torch

    def to_batch(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.matrix(frame)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            return self.network(torch.from_numpy(batch)).numpy()

    def to_prices(self, outputs: np.ndarray) -> np.ndarray:
        return self.preprocessor.decode_target(outputs)


class GBMPredictor(HousePricePredictor):
    kind = "gbm"

    def _load_weights(self) -> None:
        import lightgbm as lgb

        try:
            self.booster = lgb.Booster(model_file=str(self.model_dir / WEIGHTS["gbm"]))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"model.txt in {str(self.model_dir)!r} is not a LightGBM "
                                 f"model: {exc}") from None

    def to_batch(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.preprocessor.gbm_frame(frame)

    def forward(self, batch: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(batch)

    def to_prices(self, outputs: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.exp(np.asarray(outputs, dtype=float))


def load_predictor(model_dir: Path, backend: str = "auto") -> HousePricePredictor:
    """Dispatch on the model card's kind."""
    return HousePricePredictor.load(model_dir)
