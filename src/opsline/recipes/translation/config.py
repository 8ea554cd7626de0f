"""Typed settings of the translation ``model`` group (``configs/model/translation/*.yaml``).

Every translation model file starts from ``marian.yaml``, so one dataclass describes them
all. :func:`opsline.config.load_config` checks the composed node against it; training and
the int8 gate read it with :func:`opsline.config.settings`. Defaults are ``marian.yaml``'s.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TranslationModelConfig:
    name: str = "marian"
    pretrained: str | None = None  # a hub id or local dir to fine-tune instead
    source_prefix: str = ""  # T5 checkpoints need "translate Danish to English: "
    # -- tokenizer (from scratch): shared da+en byte-level BPE on the train split --
    vocab_size: int = 4000
    min_frequency: int = 2
    # -- the Marian-style transformer (from scratch) --
    d_model: int = 256
    encoder_layers: int = 3
    decoder_layers: int = 3
    heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    activation: str = "gelu"
    max_positions: int = 512  # sinusoidal (no parameters); >= max tokens + 1
    max_source_tokens: int = 64
    max_target_tokens: int = 64
    # -- training --
    batch_size: int = 64  # sentences per batch, length-bucketed
    lr: float = 7.0e-4
    weight_decay: float = 0.01
    warmup_steps: int = 400  # then cosine decay over the remaining steps
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    max_epochs: int = 6  # trainer.max_epochs overrides it when set
    patience: int | None = None  # epochs without val_loss improvement (None = never stop)
    val_bleu_samples: int = 200  # greedy BLEU on this many val pairs per epoch (0 = off)
    num_threads: int | None = 2  # torch CPU threads (None = torch's default)
    quantize: bool = True  # gate a dynamic-int8 copy on val BLEU at registration
