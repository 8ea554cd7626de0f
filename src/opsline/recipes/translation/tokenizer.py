"""A shared Danish+English subword tokenizer trained on the train split only.

Byte-level BPE (every input string is encodable: no ``<unk>`` for emoji or rare letters)
with the Marian conventions the model config relies on: ``<pad>`` = 0, ``</s>`` = 1
(appended to every encoded sentence), ``<unk>`` = 2. Saved as ``tokenizer.json`` plus
``tokenizer_config.json`` via ``PreTrainedTokenizerFast.save_pretrained``, so
``AutoTokenizer.from_pretrained(model_dir)`` loads it like any Hugging Face tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)  # ids 0, 1, 2 in this order
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_FILES = (TOKENIZER_FILE, "tokenizer_config.json", "spiece.model", "source.spm")


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, max_length: int = 128
) -> Any:
    """Train byte-level BPE on ``texts``; returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=int(vocab_size),
        min_frequency=int(min_frequency),
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, tok.token_to_id(EOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=int(max_length),
        clean_up_tokenization_spaces=False,
    )


def load_tokenizer(model_dir: Path) -> Any:
    """The tokenizer saved in ``model_dir`` (local files only, never the network)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


def has_tokenizer(model_dir: Path) -> bool:
    return any((Path(model_dir) / name).is_file() for name in TOKENIZER_FILES)
