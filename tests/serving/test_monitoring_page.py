"""The monitoring page at /ui/monitor, in the system's headless Chromium, offline.

A real server with the trained house_price model: predictions made while the page is open
must show up in its figures and charts without reloading it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from opsline.recipes.house_price import sample_requests
from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

from .conftest import live_server
from .test_browser import offline_page

pytestmark = pytest.mark.browser

_REQUESTS_TOTAL = """() => {
    const e = document.querySelector("#stat-requests-total");
    return e && e.dataset.value ? Number(e.dataset.value) : null;
}"""
# Points drawn by each line of the request-rate chart (Vega's SVG renderer: one <path> per
# series, "M x,y L x,y …"), and the series names in its legend.
_REQUEST_LINES = """() => [...document.querySelectorAll("#chart-requests g.mark-line path")]
    .map(p => (p.getAttribute("d") || "").split(/[ML]/).filter(s => s.trim()).length)"""
_CHART_TEXT = """() => (document.querySelector("#chart-requests svg") || {}).textContent || "" """


def poll(page, script: str, done, what: str, timeout: float = 60.0):
    """Evaluate ``script`` in the page until ``done(value)``; else fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}; last value: {value!r}")
        page.wait_for_timeout(250)


def predict(base_url: str, count: int) -> None:
    body = sample_requests()[0].model_dump(mode="json", exclude_none=True)
    for _ in range(count):
        assert httpx.post(f"{base_url}/predict", json=body).status_code == 200


def test_monitoring_page_shows_live_figures(trained_workspace: Path, browser) -> None:
    app = create_app(ServingSettings(recipe="house_price", history_interval_seconds=0.5))
    with live_server(app) as base_url:
        predict(base_url, 3)
        page = offline_page(browser, base_url)
        page.goto(f"{base_url}/monitoring")  # the short URL redirects to the page
        assert page.url == f"{base_url}/ui/monitor"

        first = poll(
            page,
            _REQUESTS_TOTAL,
            lambda v: v is not None and v >= 3,
            "the API request count never reached the 3 requests made",
        )
        # Only our /predict calls count: the page's own polling and the redirect do not.
        assert first == 3
        text = page.inner_text("#monitoring-headline")
        assert "house_price" in text and "no data yet" in text  # model shown; no training

        predict(base_url, 4)  # while the page stays open: it must update by itself
        poll(
            page,
            _REQUESTS_TOTAL,
            lambda v: v == first + 4,
            "the request count did not go from 3 to 7 without reloading the page",
        )

        # The request-rate chart draws a /predict line through several sampled points.
        poll(
            page,
            _REQUEST_LINES,
            lambda lines: any(n >= 2 for n in lines),
            "the request-rate chart never drew a line with data points",
        )
        assert "/predict" in page.evaluate(_CHART_TEXT)
        page.close()

        body = httpx.get(f"{base_url}/metrics/history").json()
        assert body["latest"]["requests_total"] == 7
        assert any(p["route_requests_per_second"].get("/predict", 0) > 0 for p in body["points"])
