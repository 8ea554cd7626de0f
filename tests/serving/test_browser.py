"""The Gradio form at /ui, driven in the system's headless Chromium (never `playwright install`).

Everything runs offline: the page must not need fonts or scripts from the internet.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

from .conftest import StubRecipe, live_server

pytestmark = pytest.mark.browser


def offline_page(browser, base_url: str):
    """A page that may only talk to our server: any other host fails, as it would offline."""
    page = browser.new_page()
    page.route(re.compile(r"^(?!" + re.escape(base_url) + ").*"), lambda route: route.abort())
    return page


# Outputs may be plain text (Markdown, Label) or the value of a Textbox/Number input.
_PAGE_TEXT = """() => document.body.innerText + "\\n" +
    [...document.querySelectorAll("input, textarea")].map(e => e.value).join("\\n")"""


def wait_for_text(page, pattern: re.Pattern[str], timeout: float = 30.0) -> str:
    """Poll the page's visible text and input values until ``pattern`` matches."""
    deadline = time.monotonic() + timeout
    while True:
        text = page.evaluate(_PAGE_TEXT)
        found = pattern.search(text)
        if found:
            return found.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern.pattern!r} never appeared; page shows:\n{text}")
        page.wait_for_timeout(200)


def test_ui_predicts_a_price(trained_workspace: Path, browser) -> None:
    app = create_app(ServingSettings(recipe="house_price"))
    with live_server(app) as base_url:
        page = offline_page(browser, base_url)
        page.goto(f"{base_url}/ui/")
        page.get_by_role("button", name=re.compile("predict", re.IGNORECASE)).first.click()
        price = wait_for_text(page, re.compile(r"\$\d{1,3}(,\d{3})+"))
        assert int(price.strip("$").replace(",", "")) > 1_000
        page.close()
        # The form's predictions count in the same metrics as the API's.
        import httpx

        text = httpx.get(f"{base_url}/metrics").text
        assert re.search(r"^opsline_predicted_value_count [1-9]", text, re.MULTILINE)


def test_ui_without_a_model_says_how_to_train_one(browser) -> None:
    app = create_app(ServingSettings(recipe="stub"), recipe=StubRecipe())  # nothing registered
    with live_server(app) as base_url:
        page = offline_page(browser, base_url)
        page.goto(f"{base_url}/ui/")
        page.get_by_role("button", name="Predict").click()
        wait_for_text(page, re.compile(r"opsline run stub"))
        page.close()
