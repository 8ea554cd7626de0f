"""Load an exported house-price model and predict, per request batch or per frame.

Two entry points meet at one model-ready matrix:

* ``predict(requests)`` (server): ``preprocess`` (the compiled numpy :class:`FeaturePlan`,
  no pandas per request) -> ``forward`` -> ``postprocess``;
* ``predict_frame(frame)`` (evaluation, batch scoring): the pandas :class:`Preprocessor`
  on raw data rows -> ``forward`` -> prices in USD.

Both build the same matrix (float32 for the MLP; float64 numbers + category codes for the
GBM), which is exactly what ``model.onnx`` takes. ``forward`` maps it to raw model outputs
(standardized log price for the MLP, log price for the GBM) with the native model or an ONNX
Runtime session, chosen at load (:func:`opsline.export.backend.select_backend`);
``to_prices`` undoes the target transform the same way for both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import ModelLoadError
from opsline.export.backend import ort_session, select_backend
from opsline.export.parity import ONNX_FILE
from opsline.recipes.base import Predictor
from opsline.recipes.house_price.card import WEIGHTS, read_card
from opsline.recipes.house_price.features import Preprocessor
from opsline.recipes.house_price.plan import FeaturePlan, gbm_frame_matrix
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
        self.plan = FeaturePlan(preprocessor)  # compiled once; every request batch uses it
        self.session: Any = None  # the ONNX Runtime session when backend == "onnx"
        self.info = {
            "recipe": card["recipe"],
            "kind": card["kind"],
            "data_version": card.get("data_version"),
            "n_model_inputs": len(card.get("feature_schema", {}).get("model_inputs", [])),
            "training": card.get("training", {}),
        }

    @classmethod
    def load(cls, model_dir: Path, backend: str = "auto") -> HousePricePredictor:
        """The right predictor for the directory's model kind (``ModelLoadError`` if unusable).

        ``backend``: ``auto`` / ``onnx`` / ``native`` (see ``select_backend``).
        """
        card = read_card(model_dir, kind=cls.kind or None)
        impl = {"mlp": MLPPredictor, "gbm": GBMPredictor}[card["kind"]]
        try:
            preprocessor = Preprocessor.load(model_dir)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ModelLoadError(
                f"preprocessing.json in {str(model_dir)!r} is unusable: {exc}."
            ) from None
        chosen, why = select_backend(model_dir, backend)
        predictor = impl(model_dir, card, preprocessor)
        if chosen == "onnx":
            # Only the session: an ONNX-serving process never imports torch / LightGBM.
            predictor._load_onnx()
        else:
            predictor._load_weights()
        predictor.backend = chosen
        predictor.info.update(backend=chosen, backend_reason=why)
        return predictor

    def _load_onnx(self) -> None:
        session = ort_session(self.model_dir / ONNX_FILE)
        inputs = session.get_inputs()
        width = inputs[0].shape[1] if inputs and len(inputs[0].shape) == 2 else None
        if len(inputs) != 1 or width != self.plan_width():
            raise ModelLoadError(
                f"{ONNX_FILE} in {str(self.model_dir)!r} takes "
                f"{[i.shape for i in inputs]}, not one matrix of "
                f"{self.plan_width()} columns."
            )
        self.session, self._input = session, inputs[0].name

    # -- subclass hooks ----------------------------------------------------------------
    def _load_weights(self) -> None:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def plan_width(self) -> int:
        """Columns of the model-ready matrix."""
        raise NotImplementedError

    def plan_batch(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """Request records -> the model-ready matrix (numpy only)."""
        raise NotImplementedError

    def to_batch(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw data rows -> the same matrix, through the pandas preprocessing."""
        raise NotImplementedError

    def forward_native(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_prices(self, outputs: Any) -> np.ndarray:
        """Raw model outputs -> prices in USD."""
        raise NotImplementedError

    # -- the Predictor contract ----------------------------------------------------------
    def preprocess(self, requests: Sequence[HousePriceRequest]) -> np.ndarray:
        records = [r.record() if hasattr(r, "record") else dict(r) for r in requests]
        return self.plan_batch(records)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        if self.session is not None:
            return self.session.run(None, {self._input: batch})[0].reshape(-1)
        return self.forward_native(batch)

    def postprocess(
        self, outputs: Any, requests: Sequence[HousePriceRequest]
    ) -> list[HousePriceResponse]:
        prices = self.to_prices(outputs)
        return [
            HousePriceResponse(
                predicted_price=round(float(price), 2),
                price_per_sqft=round(float(price) / float(r.gr_liv_area), 2),
                model_kind=self.kind,
            )
            for price, r in zip(prices, requests, strict=True)
        ]

    # -- dataset path ------------------------------------------------------------------
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
            raise ModelLoadError(
                f"The MLP weights in {str(self.model_dir)!r} do not match the model card: {exc}"
            ) from None
        self.network.eval()
        self._torch = torch

    def plan_width(self) -> int:
        return self.plan.n_features

    def plan_batch(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        return self.plan.mlp_matrix(records)

    def to_batch(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.matrix(frame)

    def forward_native(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            return self.network(torch.from_numpy(batch)).numpy()

    def to_prices(self, outputs: np.ndarray) -> np.ndarray:
        return self.preprocessor.decode_target(outputs)


class GBMPredictor(HousePricePredictor):
    kind = "gbm"

    def _load_weights(self) -> None:
        import lightgbm as lgb

        from opsline.recipes.house_price.features import NOMINAL, NUMERIC_FEATURES

        try:
            self.booster = lgb.Booster(model_file=str(self.model_dir / WEIGHTS["gbm"]))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(
                f"model.txt in {str(self.model_dir)!r} is not a LightGBM model: {exc}"
            ) from None
        # The matrix carries category codes, i.e. positions in preprocessing.json's lists;
        # LightGBM's pandas path maps levels through the lists it stored at training. They
        # must be the same lists, in the same column order, or the codes mean other levels.
        stored = [list(c) for c in (self.booster.pandas_categorical or [])]
        expected = [self.preprocessor.gbm_nominal[c] for c in NOMINAL]
        if self.booster.feature_name() != NUMERIC_FEATURES + NOMINAL or stored != expected:
            raise ModelLoadError(
                f"model.txt in {str(self.model_dir)!r} does not match its "
                f"preprocessing.json (features or category lists differ)."
            )

    def plan_width(self) -> int:
        return self.plan.n_numeric + len(self.preprocessor.gbm_nominal)

    def plan_batch(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        return self.plan.gbm_matrix(records)

    def to_batch(self, frame: pd.DataFrame) -> np.ndarray:
        return gbm_frame_matrix(self.preprocessor.gbm_frame(frame))

    def forward_native(self, batch: np.ndarray) -> np.ndarray:
        # One thread: the server runs one batch at a time per model on cores it shares
        # (as for ONNX Runtime); OpenMP threads spinning on a busy core made one row
        # ~3x slower in benchmarks/house_price_inprocess.md.
        return self.booster.predict(batch, num_threads=1)

    def to_prices(self, outputs: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.exp(np.asarray(outputs, dtype=float))


def load_predictor(model_dir: Path, backend: str = "auto") -> HousePricePredictor:
    """Dispatch on the model card's kind; ``backend`` as in ``select_backend``."""
    return HousePricePredictor.load(model_dir, backend)
