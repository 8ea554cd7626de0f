"""Loading refuses mismatched or incomplete model directories; batching keeps order."""

from __future__ import annotations

import json
import shutil

import pytest

from opsline.errors import ModelLoadError
from opsline.recipes.translation.predictor import TranslationPredictor
from opsline.recipes.translation.schemas import TranslationRequest


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return TranslationPredictor.load(tiny_model_dir)


def copy_dir(src, tmp_path):
    return shutil.copytree(src, tmp_path / "model")


def test_loads_and_translates_in_request_order(predictor):
    requests = [
        TranslationRequest(text="Hej."),
        TranslationRequest(text="Hvor er du?", num_beams=3, max_new_tokens=5),
        TranslationRequest(text="Tak.", max_new_tokens=5),
    ]
    groups = predictor.preprocess(requests)
    # One generate call per distinct decoding option set, not one per request.
    assert sorted(g.indices for g in groups) == [[0], [1], [2]]
    responses = predictor.predict(requests)
    assert [r.num_beams for r in responses] == [1, 3, 1]
    assert all(isinstance(r.translation, str) for r in responses)
    same = predictor.predict([TranslationRequest(text="Hej."), TranslationRequest(text="Nej.")])
    assert (
        len(predictor.preprocess([TranslationRequest(text="a"), TranslationRequest(text="b")])) == 1
    )
    assert same[0].translation == responses[0].translation  # batching does not change output


def test_a_request_longer_than_the_position_table_is_answered(predictor):
    """The API allows up to 256 new tokens; a model with a 64-position decoder stops at 63
    instead of indexing past its table (a 500 found by fuzzing)."""
    from opsline.recipes.translation.schemas import MAX_NEW_TOKENS

    positions = predictor.network.config.max_position_embeddings
    assert positions <= MAX_NEW_TOKENS  # the case is real for this model
    longest, bounded = predictor.predict(
        [
            TranslationRequest(text="Hej.", max_new_tokens=MAX_NEW_TOKENS),
            TranslationRequest(text="Hej.", max_new_tokens=positions - 1),
        ]
    )
    assert longest.translation == bounded.translation


def test_missing_tokenizer_is_refused(tiny_model_dir, tmp_path):
    model_dir = copy_dir(tiny_model_dir, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model_dir / name).unlink()
    with pytest.raises(ModelLoadError, match="has no tokenizer"):
        TranslationPredictor.load(model_dir)


def test_tokenizer_from_another_model_is_refused(
    tiny_model_dir, tmp_path, sentences, model_dir_factory
):
    model_dir = copy_dir(tiny_model_dir, tmp_path)
    other = model_dir_factory(tmp_path / "other", sentences, vocab_size=500)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(other / name, model_dir / name)
    with pytest.raises(
        ModelLoadError,
        match="do not match: the tokenizer has 500 tokens but the model's embeddings have 300 rows",
    ):
        TranslationPredictor.load(model_dir)


def test_pad_id_mismatch_is_refused(tiny_model_dir, tmp_path):
    model_dir = copy_dir(tiny_model_dir, tmp_path)
    config = json.loads((model_dir / "config.json").read_text())
    config["pad_token_id"] = 5
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="pad id is 0 in the tokenizer but 5 in the model"):
        TranslationPredictor.load(model_dir)


@pytest.mark.parametrize(
    "missing, message",
    [
        ("model.safetensors", "model.safetensors is missing"),
        ("opsline_model.json", "no opsline_model.json"),
    ],
)
def test_incomplete_directory_is_refused(tiny_model_dir, tmp_path, missing, message):
    model_dir = copy_dir(tiny_model_dir, tmp_path)
    (model_dir / missing).unlink()
    with pytest.raises(ModelLoadError, match=message):
        TranslationPredictor.load(model_dir)


def test_model_of_another_recipe_is_refused(tiny_model_dir, tmp_path):
    model_dir = copy_dir(tiny_model_dir, tmp_path)
    card = json.loads((model_dir / "opsline_model.json").read_text())
    (model_dir / "opsline_model.json").write_text(json.dumps({**card, "recipe": "house_price"}))
    with pytest.raises(ModelLoadError, match="made by recipe 'house_price'"):
        TranslationPredictor.load(model_dir)


def test_exported_files_are_not_pickles(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "opsline_model.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl", ".ckpt")) for n in names)
