"""The monitoring page: a second page of the app's Gradio UI at ``/ui/monitor``.

Grafana cannot be assumed, so the server shows its own live view: headline figures (API
requests, error %, p95 latency, the served model, CPU, RAM, tokens/s, training, live quality
from feedback, data drift) and line
charts of the last minutes, refreshed every ``interval`` seconds by a ``gr.Timer`` from the
app's :class:`~opsline.monitoring.history.MetricsHistory`. Everything is served by the app
itself (Gradio bundles its scripts and Vega), so the page works offline.

It is added with Gradio's multipage API (``Blocks.route``) to whatever Blocks the recipe's
``ui()`` built, so every recipe gets it without writing anything. The path is ``monitor``
because Gradio reserves ``monitoring`` for its own analytics; ``GET /monitoring`` on the
server redirects here. A metric that is absent
(no GPU, no training, not a text-generation recipe) shows "no data yet", never an error.

Stable element ids for browser tests and users' CSS: ``monitoring-headline`` (with one
``<span id="stat-NAME" data-value="…">`` per figure, e.g. ``stat-requests-total``) and
``chart-NAME`` for each chart (see :data:`CHARTS`).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.monitoring.history import MetricsHistory

MONITORING_PATH = "/monitor"  # Gradio reserves "/monitoring" (INTERNAL_ROUTES)
NO_DATA = "no data yet"
# 300 points × 2 s = the last 10 minutes: enough to see a trend, light to redraw every tick.
CHART_POINTS = 300
GIB = 1024**3


@dataclass(frozen=True)
class Chart:
    """One line chart: ``rows(point)`` gives its ``(series, value)`` pairs at one point."""

    name: str
    title: str
    y_title: str
    rows: Callable[[dict[str, Any]], list[tuple[str, float | None]]]


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000.0


def _gib(value: float | None) -> float | None:
    return None if value is None else value / GIB


def _requests(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    return sorted(p.get("route_requests_per_second", {}).items())


def _latency(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    rows = [
        ("all p50", _ms(p.get("latency_p50_seconds"))),
        ("all p95", _ms(p.get("latency_p95_seconds"))),
    ]
    per_route = p.get("route_latency_p95_seconds", {})
    if len(per_route) > 1:  # with one route its p95 is the "all" line again
        rows += [(f"{route} p95", _ms(v)) for route, v in sorted(per_route.items())]
    return rows


def _errors(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    return [("5xx", p.get("error_percent")), ("4xx", p.get("client_error_percent"))]


def _model(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    return [
        ("inference p95 (ms)", _ms(p.get("inference_p95_seconds"))),
        ("predictions/s", p.get("predictions_per_second")),
        ("tokens/s", p.get("tokens_per_second")),
    ]


def _cpu(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    system = p.get("system", {})
    return [
        ("system", system.get("cpu_percent")),
        ("server process", system.get("process_cpu_percent")),
    ]


def _memory(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    system = p.get("system", {})
    rows = [
        ("system used", _gib(system.get("memory_used_bytes"))),
        ("server process", _gib(system.get("process_memory_bytes"))),
    ]
    rows += [
        (f"GPU {device}", _gib(v))
        for device, v in sorted(system.get("gpu_memory_bytes", {}).items())
    ]
    return rows


def _training(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    rows = []
    for model, figures in sorted(p.get("training", {}).items()):
        rows += [
            (f"{model} loss", figures.get("loss")),
            (f"{model} val loss", figures.get("val_loss")),
        ]
    return rows


def _loop(p: dict[str, Any]) -> list[tuple[str, float | None]]:
    loop = p.get("loop", {})
    rows = [(f"live {metric}", value) for metric, value in sorted(loop.get("quality", {}).items())]
    return [*rows, ("drift share", loop.get("drift_share"))]


CHARTS = (
    Chart("requests", "API requests per second (by route)", "req/s", _requests),
    Chart("latency", "Request latency (ms)", "ms", _latency),
    Chart("errors", "Errors (% of API requests)", "%", _errors),
    Chart("model", "Model: inference p95 and throughput", "value", _model),
    Chart("cpu", "CPU (%)", "%", _cpu),
    Chart("memory", "Memory (GiB)", "GiB", _memory),
    Chart("training", "Training and validation loss", "loss", _training),
    Chart("loop", "Live quality (from feedback) and drift share", "value", _loop),
)


def chart_frame(chart: Chart, points: list[dict[str, Any]]) -> pd.DataFrame:
    """Long-format frame ``time | series | value`` for a ``gr.LinePlot`` (no-data rows dropped)."""
    import pandas as pd

    records = [
        (p["time"], series, float(value))
        for p in points
        for series, value in chart.rows(p)
        if value is not None
    ]
    frame = pd.DataFrame(records, columns=["time", "series", "value"])
    # Vega reads datetimes as UTC epoch ms and shows them in the browser's local time.
    frame["time"] = pd.to_datetime(frame["time"].astype("float64"), unit="s")
    frame["series"] = frame["series"].astype("string")
    frame["value"] = frame["value"].astype("float64")
    return frame


# -- headline figures -------------------------------------------------------------------------
def _number(value: float | None, digits: int = 0, unit: str = "") -> str:
    return NO_DATA if value is None else f"{value:,.{digits}f}{unit}"


def _stat(name: str, label: str, value: float | None, shown: str, detail: str = "") -> str:
    data = "" if value is None else f"{value:g}"
    return (
        f'<div class="stat"><div class="stat-label">{html.escape(label)}</div>'
        f'<span id="stat-{name}" class="stat-value" data-value="{data}">'
        f"{html.escape(shown)}</span>"
        f'<div class="stat-detail">{html.escape(detail)}</div></div>'
    )


def _model_stat(model: dict[str, Any]) -> str:
    if model.get("loaded") is None:
        return _stat("model", "Model", None, NO_DATA)
    if not model["loaded"]:
        return _stat("model", "Model", 0, "not loaded", "see /ready for why")
    version = f" v{model['version']}" if model.get("version") else ""
    alias = f"@{model['alias']}" if model.get("alias") else ""
    return _stat(
        "model",
        "Model",
        1,
        f"{model.get('name', '')}{version}",
        " ".join(x for x in (alias, model.get("kind", "")) if x),
    )


def _loop_stats(loop: dict[str, Any]) -> list[str]:
    """Live quality (its first metric; all of them in the detail) and the drift verdict."""
    quality, rows = loop.get("quality", {}), loop.get("quality_rows")
    if quality:
        first = sorted(quality)[0]
        live = _stat(
            "live-quality",
            "Live quality",
            quality[first],
            f"{first} {quality[first]:.3g}",
            ", ".join(f"{m} {v:.3g}" for m, v in sorted(quality.items())[1:])
            + f" · {_number(rows)} labelled",
        )
    else:
        live = _stat("live-quality", "Live quality", None, NO_DATA, "POST /feedback")
    share, detected = loop.get("drift_share"), loop.get("drift_detected")
    if share is None:
        drift = _stat("drift", "Data drift", None, NO_DATA, "see /ui/drift")
    else:
        drift = _stat(
            "drift",
            "Data drift",
            share,
            "DRIFT" if detected else "none",
            f"{share:.0%} of features drifted",
        )
    return [live, drift]


def headline_html(latest: dict[str, Any]) -> str:
    """The headline figures as HTML cards; absent figures read "no data yet"."""
    system = latest.get("system", {})
    window = latest.get("window_seconds")
    recent = f"last {window:.0f} s" if window else "waiting for a second sample"
    used, ram_total = system.get("memory_used_bytes"), system.get("memory_total_bytes")
    rss = system.get("process_memory_bytes")
    cards = [
        _stat(
            "requests-total",
            "API requests",
            latest.get("requests_total"),
            _number(latest.get("requests_total")),
            f"{_number(latest.get('requests_per_second'), 2)} req/s, {recent}",
        ),
        _stat(
            "error-percent",
            "Errors (5xx)",
            latest.get("error_percent"),
            _number(latest.get("error_percent"), 1, " %"),
            recent,
        ),
        _stat(
            "latency-p95",
            "p95 latency",
            _ms(latest.get("latency_p95_seconds")),
            _number(_ms(latest.get("latency_p95_seconds")), 1, " ms"),
            f"p50 {_number(_ms(latest.get('latency_p50_seconds')), 1, ' ms')}",
        ),
        _model_stat(latest.get("model", {})),
        _stat(
            "predictions-total",
            "Predictions",
            latest.get("predictions_total"),
            _number(latest.get("predictions_total")),
            f"inference p95 {_number(_ms(latest.get('inference_p95_seconds')), 1, ' ms')}",
        ),
        _stat(
            "tokens-per-second",
            "Tokens/s",
            latest.get("tokens_per_second"),
            _number(latest.get("tokens_per_second"), 1),
            f"{_number(latest.get('generated_tokens_total'))} generated",
        ),
        _stat(
            "cpu-percent",
            "CPU",
            system.get("cpu_percent"),
            _number(system.get("cpu_percent"), 0, " %"),
            f"server {_number(system.get('process_cpu_percent'), 0, ' %')}",
        ),
        _stat(
            "memory-used",
            "RAM",
            used,
            NO_DATA
            if used is None
            else f"{used / GIB:.1f}"
            + ("" if ram_total is None else f" / {ram_total / GIB:.1f}")
            + " GiB",
            f"server {_number(_gib(rss), 2, ' GiB')}",
        ),
    ]
    for device, value in sorted(system.get("gpu_memory_bytes", {}).items()):
        cards.append(
            _stat(
                f"gpu-{device}",
                f"GPU {device}",
                value,
                _number(_gib(value), 2, " GiB"),
                "allocated",
            )
        )
    training = latest.get("training", {})
    for model, figures in sorted(training.items()):
        progress = figures.get("progress")
        detail = (
            f"loss {_number(figures.get('loss'), 4)}, val {_number(figures.get('val_loss'), 4)}"
            + ("" if progress is None else f", epoch {100 * progress:.0f} %")
        )
        cards.append(
            _stat(
                f"training-{model}",
                f"Training {model}",
                figures.get("step"),
                f"step {_number(figures.get('step'))}"
                + (" (running)" if figures.get("running") else ""),
                detail,
            )
        )
    if not training:
        cards.append(_stat("training", "Training", None, NO_DATA))
    cards += _loop_stats(latest.get("loop", {}))
    return '<div class="stats">' + "".join(cards) + "</div>"


HEADLINE_CSS = """
.stats { display: flex; flex-wrap: wrap; gap: 12px; }
.stat { flex: 1 1 150px; border: 1px solid var(--border-color-primary); border-radius: 8px;
        padding: 10px 12px; background: var(--block-background-fill); }
.stat-label { font-size: 0.85em; color: var(--body-text-color-subdued); }
.stat-value { display: block; font-size: 1.5em; font-weight: 600; }
.stat-detail { font-size: 0.8em; color: var(--body-text-color-subdued); }
"""


# -- the page ---------------------------------------------------------------------------------
def add_monitoring_page(
    blocks: Any,
    history: MetricsHistory,
    *,
    path: str = MONITORING_PATH,
    refresh_seconds: float | None = None,
    chart_points: int = CHART_POINTS,
) -> None:
    """Add the "Monitoring" page to ``blocks`` (a recipe's ``gradio.Blocks``) at ``path``.

    Args:
        blocks: the recipe's Blocks, already built (its ``with`` block closed).
        history: the app's sampler; the page only reads it.
        path: page path below the Blocks' mount point (``/ui`` + ``/monitor``).
        refresh_seconds: timer period; ``None`` = the sampler's interval (refreshing
            faster would only redraw the same points).
        chart_points: newest points drawn per chart.
    """
    import gradio as gr

    def chart_update(chart: Chart, points: list[dict[str, Any]]) -> Any:
        frame = chart_frame(chart, points)
        # None, not an empty frame: a Vega view first drawn from no rows keeps a broken
        # (infinite) layout after data arrives, so its lines never show.
        if frame.empty:
            return gr.update(value=None, label=f"{chart.title} · {NO_DATA}")
        return gr.update(value=frame, label=chart.title)

    def refresh() -> list[Any]:
        points = history.points(chart_points)
        return [headline_html(history.latest())] + [chart_update(c, points) for c in CHARTS]

    with blocks.route("Monitoring", path) as page:
        gr.Markdown(
            "## Monitoring\nLive figures of this server, sampled every "
            f"{history.interval:g} s. API figures leave out the web UI and the "
            "`/metrics` endpoints; the same series are at `GET /metrics/history`."
        )
        headline = gr.HTML(
            headline_html(history.latest()),
            css_template=HEADLINE_CSS,
            js_on_load=None,
            elem_id="monitoring-headline",
        )
        plots = []
        for i in range(0, len(CHARTS), 2):
            with gr.Row():
                for chart in CHARTS[i : i + 2]:
                    plots.append(
                        gr.LinePlot(
                            None,
                            x="time",
                            y="value",
                            color="series",
                            x_title="time",
                            y_title=chart.y_title,
                            x_axis_format="%H:%M:%S",
                            color_title="",
                            label=f"{chart.title} · {NO_DATA}",
                            show_label=True,
                            elem_id=f"chart-{chart.name}",
                            tooltip="all",
                        )
                    )
        timer = gr.Timer(refresh_seconds or history.interval)
        outputs = [headline, *plots]
        # Private: the refresh is the page's plumbing, not an endpoint of the model's API.
        # Hidden progress: a spinner every two seconds would make the charts flicker.
        page.load(refresh, outputs=outputs, show_progress="hidden", api_visibility="private")
        timer.tick(refresh, outputs=outputs, show_progress="hidden", api_visibility="private")
