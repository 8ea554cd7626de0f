"""The web form: a prompt box with the sampling options of the API, and the generated text.

Stable element ids for browser tests: ``generate-prompt``, ``generate-max-new-tokens``,
``generate-temperature``, ``generate-top-p``, ``generate-top-k``, ``generate-seed``,
``generate-button``, ``generation-output`` and ``generation-message``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from opsline.errors import InvalidRequestError
from opsline.recipes.forms import validation_message
from opsline.recipes.text_generation.schemas import (
    EXAMPLE,
    MAX_NEW_TOKENS,
    GenerationRequest,
    GenerationResponse,
)

Predict = Callable[[list[GenerationRequest]], list[GenerationResponse]]

_REASONS = {
    "stop": "the model ended the text",
    "length": "max new tokens reached",
    "cancelled": "cancelled",
}


def generate_from_form(
    predict: Predict,
    prompt: Any,
    max_new_tokens: Any,
    temperature: Any,
    top_p: Any,
    top_k: Any,
    seed: Any,
) -> tuple[str, str]:
    """Form values -> (generated text, message); never raises."""
    try:
        request = GenerationRequest(
            prompt=prompt if isinstance(prompt, str) else "",
            max_new_tokens=int(max_new_tokens),
            temperature=float(temperature),
            top_p=float(top_p),
            top_k=int(top_k),
            seed=None if seed in (None, "") else int(seed),
        )
    except ValidationError as error:
        return "", validation_message(error)
    except (TypeError, ValueError):
        return "", "Please check the form: the options must be numbers."
    try:
        response = predict([request])[0]
    except InvalidRequestError as error:
        return "", f"Please check the form:\n- **{error.field}**: {error.reason}"
    except Exception as error:  # noqa: BLE001 - the form must show it, not crash
        return "", f"Generation failed: {error}"
    how = "greedy" if request.temperature == 0 else f"temperature {request.temperature:g}"
    return response.text, (
        f"{response.tokens} tokens, {how}; "
        f"{_REASONS.get(response.finish_reason, response.finish_reason)}."
    )


def build_ui(predict: Predict) -> Any:
    """A ``gradio.Blocks`` prompt box with sampling controls, calling ``predict``."""
    import gradio as gr

    with gr.Blocks(title="Text generation") as demo:
        gr.Markdown("## Text generation")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(
                    label="Prompt", value=EXAMPLE, lines=5, elem_id="generate-prompt"
                )
                with gr.Accordion("Sampling", open=False):
                    max_new = gr.Slider(
                        1,
                        MAX_NEW_TOKENS,
                        value=64,
                        step=1,
                        label="Max new tokens",
                        elem_id="generate-max-new-tokens",
                    )
                    temperature = gr.Slider(
                        0,
                        2,
                        value=0.7,
                        step=0.05,
                        label="Temperature (0 = greedy)",
                        elem_id="generate-temperature",
                    )
                    top_p = gr.Slider(
                        0.05, 1, value=0.95, step=0.05, label="Top-p", elem_id="generate-top-p"
                    )
                    top_k = gr.Slider(
                        0, 200, value=50, step=1, label="Top-k (0 = off)", elem_id="generate-top-k"
                    )
                    seed = gr.Number(
                        value=None,
                        precision=0,
                        label="Seed (empty = random)",
                        elem_id="generate-seed",
                    )
                button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            with gr.Column():
                output = gr.Textbox(
                    label="Generated text", lines=10, interactive=False, elem_id="generation-output"
                )
                message = gr.Markdown(elem_id="generation-message")

        def on_generate(*values: Any) -> tuple[str, str]:
            return generate_from_form(predict, *values)

        button.click(
            on_generate,
            inputs=[prompt, max_new, temperature, top_p, top_k, seed],
            outputs=[output, message],
            api_name="generate",
        )
    return demo
