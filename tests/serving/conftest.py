"""Serving fixtures: a tiny stand-in recipe (fast, no training) and the real trained app.

The stand-in is *not* registered, so it never shows up in ``list_recipes()`` (and in the
contract test); it is passed to ``create_app(recipe=...)`` and loaded from a local model
directory through the real ``resolve_model`` path.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from opsline.errors import ModelLoadError
from opsline.recipes.base import Predictor, Recipe
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings


class StubRequest(BaseModel):
    # Strict like every recipe's request: true and "1" are not numbers.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    x: float = Field(ge=0, le=100)
    label: str = "a"


class StubResponse(BaseModel):
    y: float

    @property
    def predicted_value(self) -> float:
        return self.y


class StubPredictor(Predictor):
    """y = slope * x; ``x == 13`` raises, to exercise the 500 handler."""

    def __init__(self, slope: float):
        self.slope = slope
        self.info = {"kind": "linear"}

    @classmethod
    def load(cls, model_dir: Path) -> StubPredictor:
        card = model_dir / "stub.json"
        if not card.exists():
            raise ModelLoadError(f"{model_dir} has no stub.json")
        return cls(json.loads(card.read_text())["slope"])

    def preprocess(self, requests: Sequence[BaseModel]) -> list[float]:
        return [r.x for r in requests]

    def forward(self, batch: list[float]) -> list[float]:
        if 13 in batch:
            raise RuntimeError("unlucky input")
        return [self.slope * x for x in batch]

    def postprocess(self, outputs: list[float], requests: Sequence[BaseModel]) -> list[BaseModel]:
        return [StubResponse(y=y) for y in outputs]


class StubRecipe(Recipe):
    name = "stub"
    primary_metric = "rmse"
    Request = StubRequest
    Response = StubResponse
    predicted_value_buckets: ClassVar[tuple[float, ...]] = (1, 10, 100, 1000)

    def prepare(self, cfg: Any):
        raise NotImplementedError

    def checks(self, cfg: Any):
        raise NotImplementedError

    def train(self, cfg, dataset, run, out_dir):
        raise NotImplementedError

    def evaluate(self, cfg, predictor, frame):
        raise NotImplementedError

    def load_predictor(self, model_dir: Path, backend: str = "auto") -> Predictor:
        return StubPredictor.load(model_dir)

    def ui(self, predict: Callable[[list[BaseModel]], list[BaseModel]]) -> Any:
        import gradio as gr

        def run(x: float) -> str:
            return f"y = {predict([StubRequest(x=x)])[0].y:.1f}"

        with gr.Blocks() as blocks:
            x = gr.Number(value=2, label="x")
            out = gr.Textbox(label="y")
            gr.Button("Predict").click(run, x, out)
        return blocks

    def sample_requests(self) -> list[BaseModel]:
        return [StubRequest(x=1), StubRequest(x=2)]

    # Monitoring: the input, its label and the output are the logged features; feedback is
    # the true y, scored by mean absolute error.
    feedback_type = float

    def monitored_features(
        self, requests: Sequence[BaseModel], responses: Sequence[BaseModel]
    ) -> list[dict[str, Any]]:
        return [
            {"x": r.x, "label": r.label, "y": o.y}  # type: ignore[attr-defined]
            for r, o in zip(requests, responses, strict=True)
        ]

    def live_quality(
        self, predictions: Sequence[dict[str, Any]], actuals: Sequence[Any]
    ) -> dict[str, float]:
        errors = [abs(p["y"] - a) for p, a in zip(predictions, actuals, strict=True)]
        return {"mae": sum(errors) / len(errors)} if errors else {}


@pytest.fixture
def stub_model_dir(tmp_path: Path) -> Path:
    model_dir = tmp_path / "stub-model"
    model_dir.mkdir()
    (model_dir / "stub.json").write_text(json.dumps({"slope": 2.0}))
    return model_dir


def stub_client(model_uri: str | None, **settings: Any) -> TestClient:
    settings.setdefault("ui", False)  # Gradio adds seconds; only the UI tests need it
    app = create_app(
        ServingSettings(recipe="stub", model_uri=model_uri, **settings), recipe=StubRecipe()
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def stub(stub_model_dir: Path) -> Iterator[TestClient]:
    """The app serving the stand-in model (no UI), max batch size 5."""
    with stub_client(str(stub_model_dir), max_batch_size=5) as client:
        yield client


@pytest.fixture
def served(trained_workspace: Path) -> Iterator[TestClient]:
    """The real app: house_price recipe, the model promoted in the trained workspace."""
    with TestClient(create_app(ServingSettings(ui=False)), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def empty() -> Iterator[TestClient]:
    """The real house_price app over an empty workspace: no model registered."""
    with TestClient(create_app(ServingSettings(ui=False)), raise_server_exceptions=False) as client:
        yield client


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port in a background thread; yields the base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
