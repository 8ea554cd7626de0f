"""Request / response schemas for the translation API (pydantic v2).

``text`` must be a real string (a number or a list is a 422, not silently coerced), and is
stripped before the length check, so ``"   "`` is refused as empty. Decoding options are
bounded: beam search costs roughly ``num_beams`` times greedy, and ``max_new_tokens``
bounds the time of one request.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

#: Longest accepted input in characters; ``$OPSLINE_TRANSLATION_MAX_CHARS`` overrides it
#: (read when the server starts). Tatoeba sentences are < 200 characters.
MAX_TEXT_CHARS = int(os.environ.get("OPSLINE_TRANSLATION_MAX_CHARS", "1000"))
MAX_BEAMS = 8
MAX_NEW_TOKENS = 256
EXAMPLE = "Jeg kan godt lide at læse bøger om aftenen."


class TranslationRequest(BaseModel):
    """One Danish text to translate into English."""

    # Strict: a JSON true or "4" is not a number of beams (pydantic would coerce both).
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"text": EXAMPLE}]},
    )

    text: StrictStr = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description=f"Danish text, 1 to {MAX_TEXT_CHARS} characters",
    )
    num_beams: int = Field(
        1, ge=1, le=MAX_BEAMS, description="1 = greedy decoding; 2-8 = beam search (slower)"
    )
    max_new_tokens: int = Field(
        64, ge=1, le=MAX_NEW_TOKENS, description="Upper bound on the length of the translation"
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value:
            raise ValueError("text must not be empty or only whitespace")
        return value


class TranslationResponse(BaseModel):
    """The English translation of one request."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "translation": "I like to read books in the evening.",
                    "num_beams": 1,
                    "truncated": False,
                }
            ]
        }
    )

    translation: str = Field(description="English translation")
    num_beams: int = Field(description="Beams used (1 = greedy)")
    truncated: bool = Field(
        False,
        description="The input was longer than the model's "
        "source length and was cut before translating",
    )

    @property
    def predicted_value(self) -> float:
        """Words in the translation: feeds the server's predicted-value histogram."""
        return float(len(self.translation.split()))
