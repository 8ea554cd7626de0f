"""The web form: Danish text in, English text out, with the decoding options of the API.

Stable element ids for browser tests: ``translate-input``, ``translate-beams``,
``translate-button``, ``translation-output`` and ``translation-message``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from opsline.recipes.forms import validation_message
from opsline.recipes.translation.schemas import (
    EXAMPLE,
    MAX_BEAMS,
    TranslationRequest,
    TranslationResponse,
)

Predict = Callable[[list[TranslationRequest]], list[TranslationResponse]]


def translate_from_form(predict: Predict, text: Any, beams: Any) -> tuple[str, str]:
    """Form values -> (translation, message); never raises."""
    try:
        request = TranslationRequest(
            text=text if isinstance(text, str) else "", num_beams=int(beams or 1)
        )
    except ValidationError as error:
        return "", validation_message(error)
    except (TypeError, ValueError):
        return "", "Please check the form:\n- **num_beams**: must be a whole number"
    try:
        response = predict([request])[0]
    except Exception as error:  # noqa: BLE001 - the form must show it, not crash
        return "", f"Translation failed: {error}"
    note = " (the input was cut to the model's maximum length)" if response.truncated else ""
    how = "greedy decoding" if response.num_beams == 1 else f"beam search ({response.num_beams})"
    return response.translation, f"Translated with {how}{note}."


def build_ui(predict: Predict) -> Any:
    """A ``gradio.Blocks`` text-in/text-out form calling ``predict``."""
    import gradio as gr

    with gr.Blocks(title="Danish → English translation") as demo:
        gr.Markdown("## Danish → English translation")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Danish", value=EXAMPLE, lines=4, elem_id="translate-input")
                beams = gr.Slider(
                    1,
                    MAX_BEAMS,
                    value=1,
                    step=1,
                    label="Beams (1 = greedy)",
                    elem_id="translate-beams",
                )
                button = gr.Button("Translate", variant="primary", elem_id="translate-button")
            with gr.Column():
                output = gr.Textbox(
                    label="English", lines=4, interactive=False, elem_id="translation-output"
                )
                message = gr.Markdown(elem_id="translation-message")

        def on_translate(value: Any, n_beams: Any) -> tuple[str, str]:
            return translate_from_form(predict, value, n_beams)

        button.click(
            on_translate, inputs=[text, beams], outputs=[output, message], api_name="translate"
        )
    return demo
