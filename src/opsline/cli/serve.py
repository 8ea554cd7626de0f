"""``opsline serve`` and ``opsline run`` (the whole path, optionally serving at the end)."""

from __future__ import annotations

from typing import Annotated

import typer

from opsline.cli.options import Host, ModelUri, Overrides, Port, Recipe, print_metrics, say


def serve(
    recipe: Recipe,
    model: ModelUri = None,
    host: Host = None,
    port: Port = None,
    overrides: Overrides = None,
) -> None:
    """Serve the model over HTTP: /predict, /ui, /metrics, /docs."""
    _serve(recipe, model, host, port, overrides or [])


def run(
    recipe: Recipe,
    overrides: Overrides = None,
    serve_after: Annotated[bool, typer.Option("--serve", help="Serve when done.")] = False,
    host: Host = None,
    port: Port = None,
) -> None:
    """The whole path: prepare → validate → train → evaluate → register → promote [→ serve]."""
    from opsline import pipeline

    results, _ = pipeline.run(recipe, overrides or [], say=say)
    for result in results:
        typer.echo(f"version {result.version} ({result.kind}):")
        print_metrics({k: v for k, v in result.metrics.items() if k.startswith("test_")})
    if serve_after:
        _serve(recipe, None, host, port, overrides or [])


def _serve(
    recipe: str,
    model: str | None,
    host: str | None,
    port: int | None,
    overrides: list[str] | None = None,
) -> None:
    from opsline.config import load_config
    from opsline.recipes.registry import get_recipe
    from opsline.serving import serve as run_server
    from opsline.serving.settings import ServingSettings

    # Validates the recipe name and overrides, gives config defaults, and (e.g. with
    # data=grapevine) the registered model name to serve.
    cfg = load_config(recipe, overrides or [])
    # Only what was given: an explicit None would override OPSLINE_MODEL_URI /
    # OPSLINE_TRACKING_URI from the environment (pydantic-settings ranks init arguments first).
    given = {
        k: v
        for k, v in {"model_uri": model, "tracking_uri": cfg.tracking.uri}.items()
        if v is not None
    }
    settings = ServingSettings(
        recipe=recipe,
        model_name=get_recipe(recipe).model_name(cfg),
        host=host or cfg.serving.host,
        port=port or cfg.serving.port,
        **given,
    )
    say(f"Serving {recipe} on http://{settings.host}:{settings.port} (UI at /ui, docs at /docs)")
    run_server(settings)
