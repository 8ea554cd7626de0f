"""Property-based fuzzing of every served recipe's OpenAPI with schemathesis, on a live server.

For each recipe a real server (uvicorn, a tiny trained or built model) is fuzzed through its
own ``/openapi.json``: valid and invalid requests for every operation, checked for

* no 5xx (``not_a_server_error``);
* no schema-invalid request accepted (``negative_data_rejection``);
* no undocumented status code (``status_code_conformance``);
* responses that match their documented schema and media type.

A few hundred cases per recipe in the normal run; ``OPSLINE_FUZZ_EXAMPLES=N`` sets the
cases per operation and phase (``make fuzz``), e.g.
``OPSLINE_FUZZ_EXAMPLES=200 pytest tests/serving/test_fuzz.py``.

Left out: ``POST /jobs/*`` and ``DELETE /jobs/{id}`` (each accepted case would start or stop
a real training process); their validation is covered by ``test_strict_types`` and the jobs
API tests.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from opsline.serving.app import create_app

from .recipe_servers import (
    KEY,
    fuzz_settings,
    house_price_url,
    image_classification_url,
    text_generation_url,
    tiny_generation_recipe,
    translation_url,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Cases per operation: house_price is fast; the torch recipes are fuzzed more lightly.
EXAMPLES = int(os.environ.get("OPSLINE_FUZZ_EXAMPLES", "0"))
FAST, SLOW = EXAMPLES or 40, EXAMPLES or 15


def _schema(app: Any, examples: int) -> Any:
    """The app's OpenAPI as a schemathesis schema, built at collection (no server needed:
    the document depends on the recipe and settings, not on the loaded model)."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.generation.update(max_examples=examples)
    return schema.exclude(path_regex=r"^/jobs/(train|evaluate)$").exclude(
        method="DELETE", path_regex=r"^/jobs/"
    )


_HYPOTHESIS = settings(
    deadline=None,
    derandomize=not EXAMPLES,  # the normal run is reproducible; `make fuzz` explores
    suppress_health_check=list(HealthCheck),
)


def _check(case: Any, url: str) -> None:
    case.call_and_validate(base_url=url, headers={"X-API-Key": KEY}, checks=CHECKS, timeout=60)


# Fixtures used by the tests below (imported so pytest finds them in this module).
__all__ = ["house_price_url", "image_classification_url", "text_generation_url", "translation_url"]

house_price = _schema(create_app(fuzz_settings("house_price")), FAST)
translation = _schema(create_app(fuzz_settings("translation")), SLOW)
text_generation = _schema(
    create_app(fuzz_settings("text_generation"), recipe=tiny_generation_recipe()), SLOW
)
image_classification = _schema(
    create_app(fuzz_settings("image_classification", model_name="grapevine")), SLOW
)


@house_price.parametrize()
@_HYPOTHESIS
def test_house_price_api(case: Any, house_price_url: str) -> None:
    _check(case, house_price_url)


@translation.parametrize()
@_HYPOTHESIS
def test_translation_api(case: Any, translation_url: str) -> None:
    _check(case, translation_url)


@text_generation.parametrize()
@_HYPOTHESIS
def test_text_generation_api(case: Any, text_generation_url: str) -> None:
    _check(case, text_generation_url)


@image_classification.parametrize()
@_HYPOTHESIS
def test_image_classification_api(case: Any, image_classification_url: str) -> None:
    _check(case, image_classification_url)
