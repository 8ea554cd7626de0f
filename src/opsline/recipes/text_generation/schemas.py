"""Request / response schemas of the text-generation API (pydantic v2).

The sampling defaults are the reference service's (temperature 0.7, top-p 0.95, top-k 50).
Every option is bounded so one request cannot ask for unbounded work: ``max_new_tokens``
caps decoding time, and whether the prompt plus ``max_new_tokens`` fits the model's context
is checked by the predictor once the model (and its limit) is known.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

MAX_NEW_TOKENS = 256
EXAMPLE = "ROMEO:\nBut soft, what light through yonder window breaks?"

FinishReason = Literal["stop", "length", "cancelled"]


class GenerationRequest(BaseModel):
    """One prompt to continue, with its sampling options."""

    # Strict: a JSON true or "0.7" is not a number (an integer is still a valid float: JSON
    # has one number type); NaN and ±inf are refused.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [{"prompt": EXAMPLE, "max_new_tokens": 64, "temperature": 0.7}]
        },
    )

    prompt: StrictStr = Field(min_length=1, description="Text to continue (not only whitespace)")
    max_new_tokens: int = Field(
        64, ge=1, le=MAX_NEW_TOKENS, description=f"Most tokens to generate, 1 to {MAX_NEW_TOKENS}"
    )
    temperature: float = Field(
        0.7, ge=0.0, description="Softmax temperature; 0 = greedy (deterministic)"
    )
    top_p: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="Nucleus sampling: keep the smallest set of tokens whose "
        "probability reaches top_p (1 = off)",
    )
    top_k: int = Field(50, ge=0, description="Keep the k most likely tokens (0 = off)")
    seed: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="Seed for sampling: the same request and seed give "
        "the same text, alone or batched with others",
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Leading/trailing whitespace is kept (it matters to a language model); only a
        # prompt with nothing else is refused.
        if not value.strip():
            raise ValueError("prompt must not be empty or only whitespace")
        return value


class GenerationResponse(BaseModel):
    """The generated continuation of one prompt."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": " It is the east, and Juliet is the sun.",
                    "tokens": 12,
                    "finish_reason": "stop",
                }
            ]
        }
    )

    text: str = Field(description="Generated text (the prompt is not repeated)")
    tokens: int = Field(description="Tokens generated (an end-of-sequence token excluded)")
    finish_reason: FinishReason = Field(
        description="stop: the model ended the text; length: max_new_tokens reached; "
        "cancelled: the client went away"
    )

    @property
    def predicted_value(self) -> float:
        """Generated tokens: feeds the server's predicted-value histogram."""
        return float(self.tokens)
