"""The text-generation predictor and its API: limits, batching, decoding, the form."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from opsline.errors import InvalidRequestError, ModelLoadError
from opsline.recipes.text_generation.predictor import GenerationPredictor, TextDecoder
from opsline.recipes.text_generation.schemas import GenerationRequest, GenerationResponse
from opsline.recipes.text_generation.ui import build_ui, generate_from_form

from .conftest import TINY_CONTEXT, tiny_app
from .test_engine import Recorder


@pytest.fixture(scope="module")
def predictor(tiny_lm_dir: Path):
    import torch

    torch.set_num_threads(1)
    loaded = GenerationPredictor.load(tiny_lm_dir)
    yield loaded
    loaded.close()


def test_load_exposes_model_tokenizer_and_context_limit(predictor: GenerationPredictor) -> None:
    assert predictor.context_limit == TINY_CONTEXT
    assert predictor.model.config.num_hidden_layers == 2
    assert predictor.tokenizer.eos_token == "<|endoftext|>"
    assert predictor.info["kind"] == "tiny" and predictor.info["parameters"] > 0
    assert predictor.max_concurrency >= predictor.engine.max_batch_size > 1


def test_load_refuses_a_directory_of_another_recipe(tiny_lm_dir: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_lm_dir, other)
    (other / "opsline_model.json").write_text('{"recipe": "translation", "kind": "x"}')
    with pytest.raises(ModelLoadError, match="translation"):
        GenerationPredictor.load(other)


def test_predict_batches_the_requests_of_one_call(predictor: GenerationPredictor) -> None:
    requests = [
        GenerationRequest(prompt=p, max_new_tokens=6, temperature=0)
        for p in ("To be", "Now is the winter", "O Romeo")
    ]
    alone = [predictor.predict([r])[0] for r in requests]
    recorder = Recorder()
    predictor.bind_metrics(recorder)
    try:
        together = predictor.predict(requests)
    finally:
        predictor.bind_metrics(None)
    assert together == alone
    assert all(r.tokens == 6 and r.finish_reason == "length" for r in together)
    assert max(recorder.steps) > 1
    assert sorted(n for n, _ in recorder.generations) == [6, 6, 6]


def test_concurrent_predict_calls_share_the_batch(predictor: GenerationPredictor) -> None:
    recorder = Recorder(hold_at=1)
    predictor.bind_metrics(recorder)
    out: dict[int, GenerationResponse] = {}

    def call(i: int, prompt: str) -> None:
        out[i] = predictor.predict(
            [GenerationRequest(prompt=prompt, max_new_tokens=5, temperature=0)]
        )[0]

    try:
        first = threading.Thread(target=call, args=(0, "To be"))
        first.start()
        assert recorder.holding.wait(30)  # request 0 is decoding
        others = [
            threading.Thread(target=call, args=(i, p))
            for i, p in ((1, "All the world"), (2, "Now"))
        ]
        for t in others:
            t.start()
        deadline = time.monotonic() + 60
        while predictor.engine.pending < 2:
            assert time.monotonic() < deadline, "requests never queued"
            threading.Event().wait(0.005)
        recorder.release()
        for t in [first, *others]:
            t.join(60)
    finally:
        predictor.bind_metrics(None)
    assert len(out) == 3 and max(recorder.steps) == 3


def test_context_limit_names_the_field(predictor: GenerationPredictor) -> None:
    long_prompt = "To be, or not to be, that is the question. " * 20
    with pytest.raises(InvalidRequestError) as error:
        predictor.predict([GenerationRequest(prompt=long_prompt)])
    assert error.value.field == "prompt" and str(TINY_CONTEXT) in error.value.reason
    with pytest.raises(InvalidRequestError) as error:
        predictor.predict([GenerationRequest(prompt="To be", max_new_tokens=TINY_CONTEXT)])
    assert error.value.field == "max_new_tokens" and str(TINY_CONTEXT) in error.value.reason


def test_seeded_sampling_is_reproducible(predictor: GenerationPredictor) -> None:
    request = GenerationRequest(prompt="Now is", max_new_tokens=10, temperature=1.0, seed=3)
    other = request.model_copy(update={"seed": 4})
    a, b, c = predictor.predict([request, request, other])
    assert a == b and a.text != c.text


def test_decoder_deltas_rebuild_multibyte_text(predictor: GenerationPredictor) -> None:
    tokenizer = predictor.tokenizer
    text = "Ça va, café naïve — ☃ 🎭 Romeo!"
    token_ids = tokenizer(text)["input_ids"]
    assert len(token_ids) > len(text.encode()) / 3  # characters really span several tokens
    decoder = TextDecoder(tokenizer)
    deltas = [decoder.push(t) for t in token_ids] + [decoder.flush()]
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)


def test_stream_deltas_concatenate_to_the_response(predictor: GenerationPredictor) -> None:
    request = GenerationRequest(prompt="O Romeo", max_new_tokens=15, temperature=0.8, seed=5)
    stream = predictor.stream(request)
    deltas = list(stream)
    assert "".join(deltas) == stream.response.text
    assert stream.response == predictor.predict([request])[0]


# -- the API ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   \n"}, "prompt"),
        ({}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"prompt": "hi", "max_new_tokens": 0}, "max_new_tokens"),
        ({"prompt": "hi", "max_new_tokens": 257}, "max_new_tokens"),
        ({"prompt": "hi", "temperature": -1}, "temperature"),
        ({"prompt": "hi", "top_p": 0}, "top_p"),
        ({"prompt": "hi", "top_p": 1.5}, "top_p"),
        ({"prompt": "hi", "top_k": -1}, "top_k"),
        ({"prompt": "hi", "seed": -1}, "seed"),
        ({"prompt": "hi", "beams": 2}, "beams"),
    ],
)
def test_schema_violations_are_422_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        GenerationRequest(**body)
    assert any(e["loc"][-1] == field for e in error.value.errors())


def test_api_answers_and_refuses_with_422s(tiny_lm_dir: Path) -> None:
    with tiny_app(tiny_lm_dir) as (app, client):
        r = client.post("/predict", json={"prompt": "To be", "max_new_tokens": 5, "temperature": 0})
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"text", "tokens", "finish_reason"}
        assert r.json()["tokens"] == 5 and r.json()["finish_reason"] == "length"
        for body, field in [
            ({"prompt": ""}, "prompt"),
            ({"prompt": "x", "top_p": 1.5}, "top_p"),
            ({"prompt": "x", "max_new_tokens": 257}, "max_new_tokens"),
            ({"prompt": "x", "extra": 1}, "extra"),
        ]:
            r = client.post("/predict", json=body)
            assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text
        r = client.post("/predict", json={"prompt": "To be, or not to be. " * 30})
        assert r.status_code == 422
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "prompt"] and str(TINY_CONTEXT) in error["msg"]
        r = client.post("/predict", json={"prompt": "To be", "max_new_tokens": 200})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "max_new_tokens"]
        # A bad request is the client's error, not the model's.
        assert "opsline_inference_errors_total 0.0" in client.get("/metrics").text
        # The server lets a whole batch in at once, not the default 2.
        assert (
            app.state.inference_limiter.total_tokens
            == app.state.model.model.predictor.max_concurrency
        )


def test_metrics_count_tokens_and_decode_steps(tiny_lm_dir: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with tiny_app(tiny_lm_dir) as (_, client):
        for _ in range(2):
            client.post("/predict", json={"prompt": "To be", "max_new_tokens": 4, "temperature": 0})
        samples = {
            s.name: s.value
            for f in text_string_to_metric_families(client.get("/metrics").text)
            for s in f.samples
        }
    assert samples["opsline_generated_tokens_total"] == 8
    assert samples["opsline_generation_batch_rows_count"] == 6  # 3 steps after each prefill
    assert samples["opsline_generation_tokens_per_second_count"] == 2
    assert samples["opsline_generation_active_sequences"] == 0


# -- the form -----------------------------------------------------------------------------
def test_form_generates_and_explains_bad_values() -> None:
    seen = []

    def fake_predict(requests):
        seen.extend(requests)
        return [GenerationResponse(text=" and so on", tokens=3, finish_reason="stop")]

    text, message = generate_from_form(fake_predict, "Hello", 10, 0, 0.9, 5, 7)
    assert text == " and so on" and "3 tokens" in message and "greedy" in message
    assert seen[0] == GenerationRequest(
        prompt="Hello", max_new_tokens=10, temperature=0, top_p=0.9, top_k=5, seed=7
    )
    text, message = generate_from_form(fake_predict, "   ", 10, 0.7, 0.9, 5, None)
    assert text == "" and "**prompt**" in message

    def too_long(requests):
        raise InvalidRequestError("prompt", "prompt is 99 tokens; the limit is 64")

    text, message = generate_from_form(too_long, "Hello", 10, 0.7, 0.9, 5, None)
    assert text == "" and "**prompt**" in message and "64" in message


def test_build_ui_makes_a_gradio_blocks() -> None:
    import gradio as gr

    demo = build_ui(lambda requests: [])
    assert isinstance(demo, gr.Blocks)
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"generate-prompt", "generate-seed", "generate-button", "generation-output"} <= ids
