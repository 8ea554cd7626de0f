"""``POST /predict/stream``: server-sent events, refusals before the stream, disconnects."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import live_server, stub_client


def _sibling(name: str):
    """A helper module of tests/recipes/text_generation, imported by path (this package
    cannot reach it with a relative import)."""
    import importlib.util
    import sys

    path = Path(__file__).parents[1] / "recipes" / "text_generation" / f"{name}.py"
    key = f"_text_generation_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


_helpers = _sibling("conftest")
build_tiny_lm, close_engine = _helpers.build_tiny_lm, _helpers.close_engine
make_tiny_app, tiny_app = _helpers.make_tiny_app, _helpers.tiny_app


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return build_tiny_lm(tmp_path_factory.mktemp("stream-lm") / "model")


def parse_events(lines: Iterator[str]) -> Iterator[tuple[str, object]]:
    """``(event, data)`` pairs of an SSE body (data JSON-decoded; comments skipped)."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_stream_events_concatenate_to_the_final_response(lm_dir: Path) -> None:
    body = {"prompt": "To be, or not", "max_new_tokens": 20, "temperature": 0.8, "seed": 11}
    with tiny_app(lm_dir) as (_, client):
        with client.stream("POST", "/predict/stream", json=body) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = list(parse_events(r.iter_lines()))
        plain = client.post("/predict", json=body).json()
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) > 2
    final = events[-1][1]
    assert "".join(data["text"] for _, data in events[:-1]) == final["text"]
    assert final == plain  # same seed, same text as the non-streaming route
    assert final["tokens"] == 20 and final["finish_reason"] == "length"


BAD_BODIES = [
    ({"prompt": ""}, ["body", "prompt"]),
    ({"prompt": "hi", "top_k": -1}, ["body", "top_k"]),
    ({"prompt": "hi", "unknown": True}, ["body", "unknown"]),
    ({"prompt": "To be, or not to be. " * 30}, ["body", "prompt"]),  # over the context limit
    ({"prompt": "hi", "max_new_tokens": 100}, ["body", "max_new_tokens"]),
]


def test_bad_bodies_are_json_422_before_any_event(lm_dir: Path) -> None:
    with tiny_app(lm_dir) as (app, client):
        for body, loc in BAD_BODIES:
            r = client.post("/predict/stream", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"] == "application/json"
            assert r.json()["detail"][0]["loc"] == loc
        assert app.state.model.model.predictor.engine.finished.total() == 0


def test_no_model_is_503(lm_dir: Path) -> None:
    with tiny_app(None) as (_, client):
        r = client.post("/predict/stream", json={"prompt": "hi"})
        assert r.status_code == 503 and "opsline" in r.json()["detail"]


def test_recipes_that_do_not_stream_have_no_stream_route(stub_model_dir: Path) -> None:
    with stub_client(str(stub_model_dir)) as client:
        assert client.post("/predict/stream", json={"x": 1}).status_code in (404, 405)
        assert "/predict/stream" not in client.get("/openapi.json").json()["paths"]


def test_client_disconnect_mid_stream_cancels_and_frees_the_slot(lm_dir: Path) -> None:
    app = make_tiny_app(lm_dir)
    recorder = _sibling("test_engine").Recorder(hold_at=4)
    body = {"prompt": "To be, or not", "max_new_tokens": 50, "temperature": 0}
    # A real server and a real TCP connection: the TestClient cannot really disconnect.
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        engine, limiter = app.state.model.model.predictor.engine, app.state.inference_limiter
        # Hold the engine inside its 4th decoding step: the generation is surely running
        # (46 tokens to go) when the client goes away.
        engine.observer = recorder
        with client.stream("POST", "/predict/stream", json=body) as r:
            assert r.status_code == 200
            # Keep the iterator referenced: a collected httpx line iterator closes the
            # connection by itself (that, too, is a disconnect, but too early for this test).
            events = parse_events(r.iter_lines())
            kind, data = next(events)
            assert kind == "delta" and data["text"]
            assert recorder.holding.wait(30)
            assert engine.active_rows == 1 and limiter.borrowed_tokens == 1
        # The connection is closed while the engine is still stuck mid-step: the server
        # must notice, give the concurrency slot back and cancel the row.
        assert wait_for(lambda: limiter.borrowed_tokens == 0), "slot not returned"
        recorder.release()
        assert wait_for(lambda: engine.active_rows == 0), "row still decoding"
        assert engine.finished == {"cancelled": 1}
        assert recorder.steps == [1] * len(recorder.steps) and len(recorder.steps) < 49
        # The server is healthy afterwards: the next stream runs to its end.
        r = client.post("/predict/stream", json={**body, "max_new_tokens": 5})
        events = list(parse_events(r.text.splitlines()))
        assert events[-1][0] == "done" and events[-1][1]["finish_reason"] == "length"
        assert limiter.borrowed_tokens == 0
    close_engine(app)
