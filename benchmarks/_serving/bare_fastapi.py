"""The anchor: the smallest sensible FastAPI + ONNX Runtime endpoint for the same model.

What a user would write by hand instead of running opsline: the same request/response
schemas (pydantic), the same compiled numpy feature plan and the same ``model.onnx`` of the
production model directory, one ``def`` endpoint (FastAPI runs it in its threadpool), one
uvicorn worker with uvicorn's defaults (as ``opsline serve``). No batching, metrics,
registry, auth or UI::

    python benchmarks/_serving/bare_fastapi.py --model-dir DIR --port 8100
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import onnxruntime as ort
import uvicorn
from fastapi import FastAPI

from opsline.recipes.house_price.features import Preprocessor
from opsline.recipes.house_price.plan import FeaturePlan
from opsline.recipes.house_price.schemas import HousePriceRequest, HousePriceResponse


def build_app(model_dir: Path) -> FastAPI:
    plan = FeaturePlan(Preprocessor.load(model_dir))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one core for the whole server, as opsline's default
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    app = FastAPI(title="bare house_price")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(request: HousePriceRequest) -> HousePriceResponse:
        x = plan.gbm_matrix([request.model_dump(exclude_none=True)])
        log_price = session.run(None, {input_name: x})[0].reshape(-1)[0]
        price = math.exp(float(log_price))  # exp in float64, as opsline's to_prices
        return HousePriceResponse(
            predicted_price=round(price, 2),
            price_per_sqft=round(price / request.gr_liv_area, 2),
            model_kind="gbm",
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(build_app(args.model_dir), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
