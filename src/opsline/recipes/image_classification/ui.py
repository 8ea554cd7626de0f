"""The web form: upload an image, press Classify, see the classes with probabilities.

The uploaded file goes through the same request schema as the API (so the same decoding
checks and the same error messages). Stable element ids for browser tests: ``image-input``,
``classify-button``, ``prediction-output`` (a label with confidences) and
``prediction-message``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsline.recipes.image_classification.schemas import ImageRequest, ImageResponse

Predict = Callable[[list[ImageRequest]], list[ImageResponse]]
TOP_K = 5


def classify_file(predict: Predict, path: str | None) -> tuple[dict[str, float], str]:
    """``({label: probability}, message)`` for the uploaded file; never raises."""
    if not path:
        return {}, "Upload an image first (PNG, JPEG or WebP)."
    try:
        request = ImageRequest.from_bytes(Path(path).read_bytes(), top_k=TOP_K)
    except ValidationError as error:
        reasons = "; ".join(e.get("msg", "invalid image") for e in error.errors())
        return {}, f"That file cannot be classified: {reasons}"
    except OSError as error:
        return {}, f"The upload could not be read: {error}"
    response = predict([request])[0]
    scores = {item.label: item.probability for item in response.labels}
    if response.task == "multilabel":
        shown = ", ".join(response.predicted) or "none above the threshold"
        return scores, f"Attributes present: {shown} ({response.model_kind})."
    top = response.labels[0]
    return scores, f"**{top.label}** ({top.probability:.0%}), by the {response.model_kind} model."


def build_ui(predict: Predict) -> Any:
    import gradio as gr

    with gr.Blocks(title="Image classification") as demo:
        gr.Markdown("## Image classification\nUpload a PNG, JPEG or WebP image (at most 10 MB).")
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    type="filepath", sources=["upload"], label="Image", elem_id="image-input"
                )
                button = gr.Button("Classify", variant="primary", elem_id="classify-button")
            with gr.Column():
                label = gr.Label(
                    num_top_classes=TOP_K, label="Prediction", elem_id="prediction-output"
                )
                message = gr.Markdown(elem_id="prediction-message")

        def on_classify(path: str | None) -> tuple[dict[str, float], str]:
            return classify_file(predict, path)

        button.click(on_classify, inputs=[image], outputs=[label, message], api_name="classify")
    return demo
