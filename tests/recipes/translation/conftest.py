"""Shared fixtures: the real Tatoeba file, configs, a recording run and a tiny model dir.

The tiny model is random (no training): loading, validation and serving behaviour do not
depend on translation quality, and building it takes about a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = ROOT / "configs"
TATOEBA = (ROOT / ".." / "shared" / "data" / "tatoeba-da-en" / "dan-eng.tsv").resolve()
GETTEXT_DIR = Path("/usr/share/locale/da/LC_MESSAGES")


def compose_config(*overrides: str):
    """The composed translation config (reading the real Tatoeba file) plus ``overrides``."""
    from opsline.config import load_config

    return load_config("translation", [f"recipe.data.path={TATOEBA}", *overrides])


class RecordingRun:
    """Test double for ``RunHandle``: records what a recipe logs."""

    def __init__(self):
        self.metrics: list[tuple[int | None, dict[str, float]]] = []
        self.texts: dict[str, str] = {}

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, {k: float(v) for k, v in metrics.items()}))

    def log_text(self, text, artifact_file):
        self.texts[artifact_file] = text

    def log_dict(self, data, artifact_file):  # pragma: no cover - unused by the recipe
        self.texts[artifact_file] = str(data)


@pytest.fixture(scope="session")
def tatoeba() -> Path:
    """The shared Tatoeba export (never copied into the repo)."""
    return TATOEBA


@pytest.fixture(scope="session")
def compose():
    return compose_config


@pytest.fixture(scope="session")
def model_dir_factory():
    return make_model_dir


@pytest.fixture(scope="session")
def tatoeba_splits():
    """The real prepared Tatoeba splits (default cleaning and split)."""
    from opsline.recipes.translation.cleaning import prepare

    return prepare(compose_config())


def make_tokenizer(sentences, vocab_size: int = 300):
    from opsline.recipes.translation.tokenizer import train_tokenizer

    return train_tokenizer(sentences, vocab_size=vocab_size, min_frequency=1)


def make_model_dir(path: Path, sentences, vocab_size: int = 300, max_positions: int = 64) -> Path:
    """A tiny random Marian model + tokenizer + card, as training would export it."""
    from opsline.recipes.translation.card import write_card
    from opsline.recipes.translation.config import TranslationModelConfig
    from opsline.recipes.translation.model import build_network

    tokenizer = make_tokenizer(sentences, vocab_size)
    mcfg = TranslationModelConfig(
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        heads=2,
        ffn_dim=32,
        dropout=0.0,
        max_positions=max_positions,
    )
    network = build_network(mcfg, tokenizer)
    path.mkdir(parents=True, exist_ok=True)
    network.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    write_card(
        path,
        "marian",
        model_name="test",
        source_prefix="",
        max_source_tokens=32,
        max_new_tokens=16,
        tokenizer={
            "vocab_size": len(tokenizer),
            "pad_id": tokenizer.pad_token_id,
            "eos_id": tokenizer.eos_token_id,
        },
        data={"source": "tatoeba", "train_pairs": len(sentences)},
    )
    return path


@pytest.fixture(scope="session")
def sentences(tatoeba_splits) -> list[str]:
    train = tatoeba_splits["train"].head(300)
    return list(train["da"]) + list(train["en"])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, sentences) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("tiny-translation") / "model", sentences)


@pytest.fixture
def recording_run() -> RecordingRun:
    return RecordingRun()
