"""A server whose model takes 0.3 s per batch, run as a script by the drain test.

``python slow_app.py MODEL_DIR PORT``: serves a stand-in recipe with uvicorn (as ``opsline
serve`` does), so SIGTERM reaches a real server process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from opsline.recipes.base import Predictor, Recipe


class SlowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float


class SlowResponse(BaseModel):
    y: float


class SlowPredictor(Predictor):
    def __init__(self) -> None:
        self.info = {"kind": "slow"}

    @classmethod
    def load(cls, model_dir: Path) -> SlowPredictor:
        return cls()

    def preprocess(self, requests: Sequence[BaseModel]) -> list[float]:
        return [r.x for r in requests]

    def forward(self, batch: list[float]) -> list[float]:
        time.sleep(0.3)
        return [x + 1 for x in batch]

    def postprocess(self, outputs: list[float], requests: Sequence[BaseModel]) -> list[BaseModel]:
        return [SlowResponse(y=y) for y in outputs]


class SlowRecipe(Recipe):
    name = "slow"
    primary_metric = "rmse"
    Request = SlowRequest
    Response = SlowResponse

    def prepare(self, cfg: Any):
        raise NotImplementedError

    def checks(self, cfg: Any):
        raise NotImplementedError

    def train(self, cfg, dataset, run, out_dir):
        raise NotImplementedError

    def evaluate(self, cfg, predictor, frame):
        raise NotImplementedError

    def ui(self, predict):
        raise NotImplementedError

    def load_predictor(self, model_dir: Path, backend: str = "auto") -> Predictor:
        return SlowPredictor.load(model_dir)

    def sample_requests(self) -> list[BaseModel]:
        return [SlowRequest(x=1)]


if __name__ == "__main__":
    import uvicorn

    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings

    model_dir, port = sys.argv[1], int(sys.argv[2])
    settings = ServingSettings(
        recipe="slow", model_uri=model_dir, ui=False, batch_max_size=2, reload_interval_s=0
    )
    uvicorn.run(
        create_app(settings, recipe=SlowRecipe()), host="127.0.0.1", port=port, log_level="warning"
    )
