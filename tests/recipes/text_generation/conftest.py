"""Text-generation fixtures: a tiny random causal LM exported like the recipe exports one.

The model is a 2-layer, 64-wide ``LlamaForCausalLM`` with random weights and a byte-level
BPE tokenizer trained on a few lines: its text is gibberish, but every serving path (batching,
sampling, stop reasons, streaming, limits) runs exactly as on SmolLM2, in milliseconds.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

TINY_CONTEXT = 64
LINES = [
    "To be, or not to be, that is the question.",
    "Whether 'tis nobler in the mind to suffer the slings and arrows.",
    "Now is the winter of our discontent made glorious summer.",
    "All the world's a stage, and all the men and women merely players.",
    "O Romeo, Romeo, wherefore art thou Romeo? Ça va, café, naïve — ☃.",
]


def build_tiny_lm(model_dir: Path, *, seed: int = 0, context_limit: int = TINY_CONTEXT) -> Path:
    """Write a tiny random LM + tokenizer + opsline model card into ``model_dir``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from opsline.export.card import write_card

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(
        LINES,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<|endoftext|>", "<pad>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<pad>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context_limit,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # random init is very flat: sharpen it so greedy has clear argmaxes
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    write_card(
        model_dir, {"recipe": "text_generation", "kind": "tiny", "context_limit": context_limit}
    )
    return model_dir


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LM exported like the recipe does (shared, read-only)."""
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm") / "model")


@pytest.fixture(scope="session")
def tiny_lm(tiny_lm_dir: Path):
    """``(model, tokenizer)`` of :func:`tiny_lm_dir`, loaded once, single-threaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)  # the test machine's cores are shared
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_lm_dir)


def card_of(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "opsline_model.json").read_text())


class TinyGenerationRecipe:
    """A stand-in recipe serving the tiny LM with the real schemas, predictor and UI.

    Not registered (so the contract test never sees it); ``create_app(recipe=...)`` takes
    it. It duck-types the few ``Recipe`` members the server uses, so these tests do not
    depend on the recipe's training code.
    """

    name = "text_generation"
    description = "tiny stand-in"
    streams = True
    accepts_files = False
    predicted_value_buckets = None
    # Monitoring members the server reads (prediction log, drift, feedback); the real
    # recipe's values so the log and drift paths run as in production.
    reference_rows = 16
    log_request_body = True
    request_in_features = False
    feedback_type = None

    def __init__(self) -> None:
        from opsline.recipes.text_generation.schemas import (
            GenerationRequest,
            GenerationResponse,
        )

        self.Request, self.Response = GenerationRequest, GenerationResponse

    def load_predictor(self, model_dir: Path, backend: str = "auto"):
        from opsline.recipes.text_generation.predictor import load_predictor

        return load_predictor(model_dir)

    def monitored_features(self, requests, responses):
        from opsline.recipes.text_generation.monitoring import monitored_features

        return monitored_features(requests, responses)

    def requests_from_frame(self, frame):
        from opsline.recipes.text_generation.monitoring import requests_from_frame

        return requests_from_frame(frame)

    def live_quality(self, predictions, actuals):
        return {}

    def ui(self, predict):
        from opsline.recipes.text_generation.ui import build_ui

        return build_ui(predict)

    def sample_requests(self) -> list:
        return [self.Request(prompt="To be, or not", max_new_tokens=8)]


def make_tiny_app(model_dir: Path | None, **settings):
    """The serving app over the tiny LM (or no model when ``model_dir`` is None); the model
    loads when the app starts."""
    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings

    settings.setdefault("ui", False)
    uri = str(model_dir) if model_dir is not None else "models:/text_generation@production"
    return create_app(
        ServingSettings(recipe="text_generation", model_uri=uri, **settings),
        recipe=TinyGenerationRecipe(),
    )


@contextlib.contextmanager
def tiny_app(model_dir: Path | None, **settings):
    """``(app, TestClient)`` serving the tiny LM (or no model when ``model_dir`` is None);
    the engine thread is closed afterwards."""
    from fastapi.testclient import TestClient

    app = make_tiny_app(model_dir, **settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        try:
            yield app, client
        finally:
            close_engine(app)


def close_engine(app) -> None:
    model = app.state.model.model
    if model is not None:
        model.predictor.close()
