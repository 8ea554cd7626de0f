"""Load an exported translation model and translate batches of requests.

``load`` refuses (``ModelLoadError``) before anything is served when the directory is not a
translation model, the tokenizer is missing, or tokenizer and checkpoint disagree (vocab
size vs. embedding rows, pad/eos ids): a model that would emit garbage never goes live,
and a server that fails to load a new model keeps its previous one.

Backends (:func:`opsline.recipes.translation.quantize.choose_backend`): ``native`` serves the
float32 weights; ``auto`` serves a dynamic-int8 copy built at load when the directory's
int8 gate record passed (``self.backend = "int8"``), else float32; ``onnx`` is ignored
(translation has no ONNX export) and handled like ``auto``. ``info["backend_reason"]`` says
which and why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsline.errors import ModelLoadError
from opsline.recipes.base import Predictor
from opsline.recipes.translation.card import read_card
from opsline.recipes.translation.decoding import translate
from opsline.recipes.translation.schemas import TranslationRequest, TranslationResponse
from opsline.recipes.translation.tokenizer import has_tokenizer, load_tokenizer

log = logging.getLogger(__name__)


@dataclass
class Group:
    """Requests sharing decoding options: translated in one ``generate`` call."""

    indices: list[int]
    texts: list[str]
    num_beams: int
    max_new_tokens: int


def check_compatible(
    tokenizer: Any, config: Any, embedding_rows: int, card: dict[str, Any], where: str
) -> None:
    """Raise ``ModelLoadError`` if tokenizer and checkpoint do not belong together."""
    problems = []
    if len(tokenizer) > embedding_rows:
        problems.append(
            f"the tokenizer has {len(tokenizer)} tokens but the model's embeddings "
            f"have {embedding_rows} rows"
        )
    expected = (card.get("tokenizer") or {}).get("vocab_size")
    if expected is not None and int(expected) != len(tokenizer):
        problems.append(
            f"the model was trained with a {expected}-token tokenizer, this one "
            f"has {len(tokenizer)}"
        )
    for name in ("pad", "eos"):
        ours = getattr(tokenizer, f"{name}_token_id", None)
        theirs = getattr(config, f"{name}_token_id", None)
        if ours is None:
            problems.append(f"the tokenizer has no {name} token")
        elif theirs is not None and int(ours) != int(theirs):
            problems.append(f"{name} id is {ours} in the tokenizer but {theirs} in the model")
    if problems:
        raise ModelLoadError(
            f"Tokenizer and checkpoint in {where} do not match: " + "; ".join(problems) + "."
        )


class TranslationPredictor(Predictor):
    """Danish -> English with batched greedy or beam-search generation."""

    # Padding makes every sentence cost the longest one's decoding steps: past a few dozen
    # sentences a batch mostly decodes padding (and beams multiply the rows).
    max_batch_size = 32

    def __init__(self, model_dir: Path, card: dict[str, Any], tokenizer: Any, network: Any):
        self.model_dir, self.card = Path(model_dir), card
        self.tokenizer, self.network = tokenizer, network
        self.prefix = str(card.get("source_prefix") or "")
        self.max_source_tokens = int(card.get("max_source_tokens", 128))
        self.info = {
            "recipe": card["recipe"],
            "kind": card["kind"],
            "model_name": card.get("model_name"),
            "architecture": card.get("architecture", {}).get("summary"),
            "data": {
                k: v
                for k, v in (card.get("data") or {}).items()
                if k in ("source", "version", "train_pairs")
            },
            "training": card.get("training", {}),
        }

    @classmethod
    def load(cls, model_dir: Path, backend: str = "auto") -> TranslationPredictor:
        """Load ``model_dir``; ``backend``: ``auto`` / ``native`` / ``onnx`` (module doc)."""
        from opsline.recipes.translation.quantize import INT8, choose_backend, quantize_network

        model_dir = Path(model_dir)
        card = read_card(model_dir)
        chosen, why = choose_backend(model_dir, backend)  # an unknown value fails fast
        where = repr(str(model_dir))
        if not has_tokenizer(model_dir):
            raise ModelLoadError(
                f"The translation model in {where} has no tokenizer "
                "(tokenizer.json is missing); it cannot be served."
            )
        try:
            tokenizer = load_tokenizer(model_dir)
        except Exception as exc:  # noqa: BLE001 - corrupt JSON, unknown class: refuse, say why
            raise ModelLoadError(f"The tokenizer in {where} cannot be loaded: {exc}") from None
        import torch
        from transformers import AutoConfig, AutoModelForSeq2SeqLM
        from transformers.utils import logging as hf_logging

        # Decoding one sentence is a chain of small ops: one thread per request is fastest
        # and never spin-waits on a busy host (2 threads: 32 ms -> 880 ms median under load);
        # the server runs requests side by side instead (max_concurrent_inference).
        torch.set_num_threads(max(1, int(os.environ.get("OPSLINE_TRANSLATION_THREADS", "1"))))

        hf_logging.disable_progress_bar()  # per-shard bars are noise in server logs

        try:
            config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable config refuses the model
            raise ModelLoadError(f"config.json in {where} is unusable: {exc}") from None
        rows = int(getattr(config, "vocab_size", 0) or 0)
        check_compatible(tokenizer, config, rows, card, where)
        try:
            network = AutoModelForSeq2SeqLM.from_pretrained(
                str(model_dir), local_files_only=True, use_safetensors=True
            )
        except Exception as exc:  # noqa: BLE001 - shape mismatch, truncated weights ...
            raise ModelLoadError(
                f"The weights in {where} do not load: {str(exc).splitlines()[0]}"
            ) from None
        check_compatible(
            tokenizer, network.config, network.get_input_embeddings().num_embeddings, card, where
        )
        network.eval()
        if chosen == INT8:
            # Rebuilt from the float safetensors at every load (deterministic, ~0.15 s):
            # the gate record is the only int8 artefact on disk. If a later torch drops
            # torch.ao.quantization, the validated float model serves rather than nothing.
            try:
                network = quantize_network(network)
            except Exception as exc:  # any quantization failure: serve float, say why
                log.warning("int8 quantization failed at load; serving float32", exc_info=True)
                chosen, why = (
                    "native",
                    (
                        f"float32 weights (the int8 gate passed but quantizing "
                        f"at load failed: {type(exc).__name__}: {exc})."
                    ),
                )
        predictor = cls(model_dir, card, tokenizer, network)
        predictor.backend = chosen
        predictor.info.update(backend=chosen, backend_reason=why)
        return predictor

    # -- helpers -----------------------------------------------------------------------
    def translate(
        self,
        texts: Sequence[str],
        num_beams: int = 1,
        max_new_tokens: int = 64,
        batch_size: int = 64,
    ) -> list[str]:
        """Translations of ``texts`` (evaluation and batch use)."""
        return translate(
            self.network,
            self.tokenizer,
            list(texts),
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            prefix=self.prefix,
            max_source_tokens=self.max_source_tokens,
        )

    def is_truncated(self, text: str) -> bool:
        return len(self.tokenizer(self.prefix + text)["input_ids"]) > self.max_source_tokens

    # -- the Predictor contract ----------------------------------------------------------
    def batch_key(self, request: TranslationRequest) -> tuple[int, int]:
        """One ``generate`` call needs one set of decoding options (beams, length)."""
        return int(request.num_beams), int(request.max_new_tokens)

    def preprocess(self, requests: Sequence[TranslationRequest]) -> list[Group]:
        groups: dict[tuple[int, int], Group] = {}
        for i, request in enumerate(requests):
            key = self.batch_key(request)
            group = groups.setdefault(key, Group([], [], *key))
            group.indices.append(i)
            group.texts.append(request.text)
        return list(groups.values())

    def forward(self, batch: list[Group]) -> list[tuple[Group, list[str]]]:
        return [(g, self.translate(g.texts, g.num_beams, g.max_new_tokens)) for g in batch]

    def postprocess(
        self, outputs: list[tuple[Group, list[str]]], requests: Sequence[TranslationRequest]
    ) -> list[TranslationResponse]:
        out: list[TranslationResponse | None] = [None] * len(requests)
        for group, texts in outputs:
            for i, text in zip(group.indices, texts, strict=True):
                out[i] = TranslationResponse(
                    translation=text,
                    num_beams=group.num_beams,
                    truncated=self.is_truncated(requests[i].text),
                )
        return [r for r in out if r is not None]


def load_predictor(model_dir: Path, backend: str = "auto") -> TranslationPredictor:
    return TranslationPredictor.load(model_dir, backend)
