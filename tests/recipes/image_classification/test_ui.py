"""The /ui upload form in the system's headless Chromium: upload a leaf, see the prediction.

Uses the session's trained grapevine model; the page may only talk to our server.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings

from ...serving.conftest import live_server
from .conftest import CLASSES, GRAPEVINE

pytestmark = pytest.mark.browser


def _text(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def wait_for(page, selector: str, pattern: re.Pattern[str], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _text(page, selector)
        found = pattern.search(text)
        if found:
            return found.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern.pattern!r} never appeared in {selector}: {text!r}")
        page.wait_for_timeout(250)


def test_upload_a_leaf_and_see_the_prediction(
    grapevine_workspace: Path, browser, tmp_path: Path
) -> None:
    app = create_app(ServingSettings(recipe="image_classification", model_name="grapevine"))
    leaf = GRAPEVINE / "Dimnit" / "Dimnit (7).png"
    with live_server(app) as base_url:
        page = browser.new_page()
        page.route(re.compile(r"^(?!" + re.escape(base_url) + ").*"), lambda route: route.abort())
        page.goto(f"{base_url}/ui/")
        page.locator("#image-input input[type=file]").set_input_files(str(leaf))
        page.wait_for_timeout(500)
        page.locator("#classify-button").click()
        label = wait_for(page, "#prediction-output", re.compile("|".join(CLASSES)))
        assert label in CLASSES
        assert re.search(r"\d+%", _text(page, "#prediction-output"))  # with confidences
        page.close()
        import httpx

        metrics = httpx.get(f"{base_url}/metrics").text
        assert re.search(r"^opsline_predicted_value_count [1-9]", metrics, re.MULTILINE)
