"""The drift page of the app's Gradio UI at ``/ui/drift``.

Shows the server's latest drift check (:class:`~opsline.serving.drift_monitor.DriftMonitor`):
the verdict or why there is none, the share of drifted features, a per-feature table
(method, score, threshold, drifted) and Evidently's own report, embedded from ``GET
/drift/report``. "Check now" runs a check off the request path, as ``GET
/drift?refresh=true`` does. Added with ``Blocks.route`` like the monitoring page.

Stable element ids: ``drift-verdict`` (``data-status`` = the status), ``drift-features``,
``drift-report``, ``drift-check``.
"""

from __future__ import annotations

import asyncio
import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from opsline.monitoring.drift import DriftResult
    from opsline.serving.drift_monitor import DriftMonitor

DRIFT_PAGE_PATH = "/drift"
REPORT_URL = "/drift/report"
FEATURE_COLUMNS = ["feature", "method", "score", "threshold", "drifted"]
# The refresh timer only re-reads the latest result: a few seconds is plenty.
PAGE_REFRESH_S = 10.0

_LABELS = {
    "drift": "Data drift detected",
    "no_drift": "No data drift",
    "not_enough_data": "Not enough data",
    "no_reference": "No reference",
    "no_model": "No model",
    "error": "Check failed",
}

VERDICT_CSS = """
.drift-verdict { border: 1px solid var(--border-color-primary); border-radius: 8px;
                 padding: 12px 14px; background: var(--block-background-fill); }
.drift-verdict[data-status="drift"] { border-color: #d9534f; }
.drift-status { font-size: 1.5em; font-weight: 600; }
.drift-detail { color: var(--body-text-color-subdued); font-size: 0.9em; }
"""


def verdict_html(result: DriftResult | None) -> str:
    """The verdict card: status, the sentence, share of drifted features, window."""
    if result is None:
        return (
            '<div class="drift-verdict" data-status="none"><div class="drift-status">'
            "No check yet</div></div>"
        )
    summary = result.summary()
    share = (
        ""
        if result.share is None
        else (
            f"{len(result.drifted_features)} of {len(result.features)} features drifted "
            f"({result.share:.0%}; drift from {result.drift_share:.0%}) · "
        )
    )
    model = f"{result.model} v{result.version}" if result.version else (result.model or "")
    detail = (
        f"{share}{result.rows} requests ({result.window or ''}) · reference "
        f"{result.reference_rows} rows · {model} · checked {summary['checked_at']}"
    )
    return (
        f'<div class="drift-verdict" data-status="{html.escape(result.status)}">'
        f'<div class="drift-status">{html.escape(_LABELS.get(result.status, result.status))}'
        f"</div><div>{html.escape(result.message)}</div>"
        f'<div class="drift-detail">{html.escape(detail)}</div></div>'
    )


def feature_frame(result: DriftResult | None) -> pd.DataFrame:
    """One row per tested feature, drifted ones first."""
    import pandas as pd

    rows = (
        []
        if result is None
        else [
            (f.name, f.method, float(f"{f.score:.4g}"), f.threshold, "yes" if f.drifted else "no")
            for f in result.features
        ]
    )
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)


def report_html(result: DriftResult | None) -> str:
    """Evidently's report in an iframe (its scripts stay out of the Gradio page)."""
    if result is None or result.report_html is None:
        why = "no check yet" if result is None else result.message
        return f'<p class="drift-detail">No Evidently report: {html.escape(why)}.</p>'
    # The check time in the URL: a new check reloads the frame, the same one is cached.
    return (
        f'<iframe src="{REPORT_URL}?t={result.checked_at:.3f}" title="Evidently drift '
        'report" style="width: 100%; height: 1100px; border: 0;"></iframe>'
    )


def add_drift_page(blocks: Any, monitor: DriftMonitor, *, path: str = DRIFT_PAGE_PATH) -> None:
    """Add the "Drift" page to ``blocks`` (a recipe's ``gradio.Blocks``) at ``path``."""
    import gradio as gr

    def view(result: DriftResult | None) -> list[Any]:
        return [verdict_html(result), feature_frame(result), report_html(result)]

    def show_latest() -> list[Any]:
        return view(monitor.latest)

    def check_now() -> list[Any]:
        # Gradio calls this in a worker thread; the check itself runs on the server's loop
        # (shared with GET /drift?refresh=true) and in its own worker thread.
        if monitor.loop is None:
            raise gr.Error("The drift monitor has not started.", title="Drift")
        return view(asyncio.run_coroutine_threadsafe(monitor.check_now(), monitor.loop).result())

    with blocks.route("Drift", path) as page:
        gr.Markdown(
            "## Data drift\nLogged requests "
            f"({html.escape(monitor.describe()['window'])}) against the served model's "
            "reference (its train split), tested feature by feature with Evidently. "
            + (
                f"Checked every {monitor.interval:g} s"
                if monitor.interval > 0
                else "Checked on demand"
            )
            + "; the same result is at `GET /drift`."
        )
        verdict = gr.HTML(
            verdict_html(monitor.latest),
            css_template=VERDICT_CSS,
            js_on_load=None,
            elem_id="drift-verdict",
        )
        button = gr.Button("Check now", elem_id="drift-check", size="sm")
        table = gr.Dataframe(
            feature_frame(monitor.latest),
            headers=FEATURE_COLUMNS,
            label="Features",
            interactive=False,
            elem_id="drift-features",
        )
        report = gr.HTML(report_html(monitor.latest), js_on_load=None, elem_id="drift-report")
        outputs = [verdict, table, report]
        page.load(show_latest, outputs=outputs, show_progress="hidden", api_visibility="private")
        button.click(check_now, outputs=outputs, api_visibility="private")
        gr.Timer(PAGE_REFRESH_S).tick(
            show_latest, outputs=outputs, show_progress="hidden", api_visibility="private"
        )
