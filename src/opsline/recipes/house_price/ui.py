"""The web form: one input per request field, a Predict button, price and price per sq ft.

Inputs are generated from :class:`HousePriceRequest`, so the form and the API can never
disagree: Literal fields become dropdowns of the Ames codes, numbers get the schema's
bounds. Required fields and the most informative ones start at a typical Ames house;
the rest sit in an accordion, empty = "unknown, impute as in training".

Stable element ids for browser tests: ``field-<name>`` for every input, ``predict-button``,
``predicted-price``, ``price-per-sqft`` and ``prediction-message``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from opsline.recipes.forms import validation_message
from opsline.recipes.house_price.schemas import (
    TYPICAL_HOUSE,
    HousePriceRequest,
    HousePriceResponse,
)

Predict = Callable[[list[HousePriceRequest]], list[HousePriceResponse]]
NO_VALUE = "—"


def _literal_choices(annotation: Any) -> list[str] | None:
    """Allowed codes of a ``Literal[...]`` (optionally ``| None``) annotation."""
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            return [str(a) for a in typing.get_args(arg)]
    return None


def _bounds(info: Any) -> tuple[float | None, float | None]:
    low = high = None
    metadata = list(info.metadata)
    for arg in typing.get_args(info.annotation):  # Annotated[...] | None
        metadata += list(getattr(arg, "__metadata__", ()))
        for inner in getattr(arg, "__metadata__", ()):
            metadata += list(getattr(inner, "metadata", ()))
    for item in metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    return low, high


def _is_int(annotation: Any) -> bool:
    """``int``, ``int | None`` or ``Annotated[int, ...] | None``."""
    for arg in (annotation, *typing.get_args(annotation)):
        if arg is int or (
            typing.get_origin(arg) is typing.Annotated and typing.get_args(arg)[0] is int
        ):
            return True
    return False


def format_response(response: HousePriceResponse) -> tuple[str, str]:
    """``("$181,500", "$126 / sq ft")``."""
    return (f"${response.predicted_price:,.0f}", f"${response.price_per_sqft:,.0f} / sq ft")


def predict_from_form(
    predict: Predict, names: Sequence[str], values: Sequence[Any]
) -> tuple[str, str, str]:
    """Form values -> (price, price per sq ft, message); never raises."""
    given = {n: v for n, v in zip(names, values, strict=True) if v not in (None, "")}
    try:
        request = HousePriceRequest(**given)
    except ValidationError as error:
        return NO_VALUE, NO_VALUE, validation_message(error)
    try:
        response = predict([request])[0]
    except Exception as error:  # noqa: BLE001 - the form must show it, not crash
        return NO_VALUE, NO_VALUE, f"Prediction failed: {error}"
    price, per_sqft = format_response(response)
    return price, per_sqft, f"Estimated by the {response.model_kind} model."


def build_ui(predict: Predict) -> Any:
    """A ``gradio.Blocks`` valuation form calling ``predict``."""
    import gradio as gr

    fields = HousePriceRequest.model_fields
    main = [n for n, f in fields.items() if f.is_required() or n in TYPICAL_HOUSE]
    extra = [n for n in fields if n not in main]
    components: dict[str, Any] = {}

    def make(name: str) -> Any:
        info = fields[name]
        label = f"{name}{'' if info.is_required() else ' (optional)'}"
        default = TYPICAL_HOUSE.get(name)
        choices = _literal_choices(info.annotation)
        if choices is not None:
            return gr.Dropdown(
                choices=choices,
                value=default,
                label=label,
                info=info.description,
                elem_id=f"field-{name}",
            )
        # Bounds go in the hint, not in gr.Number(minimum=...): out-of-range values then
        # reach the schema, whose message names the field in the form (not a toast).
        low, high = _bounds(info)
        hint = info.description or ""
        if low is not None and high is not None:
            hint = f"{hint} ({low:g}–{high:g})"
        return gr.Number(
            value=default,
            label=label,
            info=hint,
            precision=0 if _is_int(info.annotation) else None,
            elem_id=f"field-{name}",
        )

    with gr.Blocks(title="House price valuation") as demo:
        gr.Markdown(
            "## House price valuation (Ames, Iowa)\nFill in what you know; "
            "empty optional fields are estimated from typical Ames sales."
        )
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row():
                    for name in main:
                        components[name] = make(name)
                with gr.Accordion("More details (optional)", open=False), gr.Row():
                    for name in extra:
                        components[name] = make(name)
                button = gr.Button("Predict", variant="primary", elem_id="predict-button")
            with gr.Column(scale=1):
                price = gr.Textbox(
                    label="Predicted price", interactive=False, elem_id="predicted-price"
                )
                per_sqft = gr.Textbox(
                    label="Price per square foot", interactive=False, elem_id="price-per-sqft"
                )
                message = gr.Markdown(elem_id="prediction-message")
        names = list(components)

        def on_predict(*values: Any) -> tuple[str, str, str]:
            return predict_from_form(predict, names, values)

        button.click(
            on_predict,
            inputs=[components[n] for n in names],
            outputs=[price, per_sqft, message],
            api_name="predict",
        )
    return demo
