"""The Open Inference Protocol (KServe v2) routes, driven by Triton's own HTTP client.

Real uvicorn servers over real models: the session's house_price GBM, a small grapevine CNN
and the tiny random LM; ``tritonclient.http`` for the happy paths, ``httpx`` for the
malformed requests a client library would never send.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import pytest
from pydantic import BaseModel
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from opsline.recipes.house_price.schemas import HousePriceRequest, HousePriceResponse
from opsline.serving.app import create_app
from opsline.serving.oip_schema import tensors_of
from opsline.serving.settings import ServingSettings

from .conftest import live_server

HOUSES = [  # three different houses: a shuffled answer would show
    {
        "neighborhood": "NAmes",
        "gr_liv_area": 1442.0,
        "overall_qual": 6,
        "year_built": 1973,
        "garage_cars": 2,
    },
    {
        "neighborhood": "NridgHt",
        "gr_liv_area": 2400.5,
        "overall_qual": 9,
        "year_built": 2006,
        "garage_cars": 3,
    },
    {
        "neighborhood": "OldTown",
        "gr_liv_area": 900.0,
        "overall_qual": 4,
        "year_built": 1920,
        "garage_cars": 1,
    },
]


def _sibling(recipe: str):
    """tests/recipes/<recipe>/conftest.py, imported by path (no relative import reaches it)."""
    key = f"_{recipe}_conftest"
    if key not in sys.modules:
        path = Path(__file__).parents[1] / "recipes" / recipe / "conftest.py"
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[key]


def _client(url: str) -> InferenceServerClient:
    return InferenceServerClient(url=url.removeprefix("http://"))


def _input(name: str, values: list, datatype: str, binary: bool = False) -> InferInput:
    array = np.array(values, dtype=object if datatype == "BYTES" else None)
    if datatype != "BYTES":
        array = array.astype(
            {"FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}[datatype]
        )
    return InferInput(name, list(array.shape), datatype).set_data_from_numpy(
        array, binary_data=binary
    )


def _house_inputs(houses: list[dict], binary: bool = False) -> list[InferInput]:
    types = {
        "neighborhood": "BYTES",
        "gr_liv_area": "FP64",
        "overall_qual": "INT64",
        "year_built": "INT32",
        "garage_cars": "INT64",
    }  # INT32: any int width is taken
    return [_input(name, [h[name] for h in houses], dtype, binary) for name, dtype in types.items()]


@pytest.fixture(scope="module")
def house_url(_trained_home: Path) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(_trained_home))
        app = create_app(ServingSettings(ui=False, reload_interval_s=0, max_batch_size=10))
        with live_server(app) as url:
            yield url


def test_health_and_metadata_from_the_recipe_schemas(house_url: str) -> None:
    client = _client(house_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "opsline"
    version = httpx.get(f"{house_url}/model").json()["version"]
    assert client.is_model_ready("house_price") and client.is_model_ready("house_price", version)
    meta = client.get_model_metadata("house_price")
    assert meta == client.get_model_metadata("house_price", version)
    assert meta["name"] == "house_price" and meta["versions"] == [version]
    assert meta["platform"] in {"opsline-house_price-native", "opsline-house_price-onnx"}
    inputs = {t["name"]: t for t in meta["inputs"]}
    assert list(inputs) == list(HousePriceRequest.model_fields)
    assert {
        n: inputs[n]["datatype"]
        for n in ("neighborhood", "gr_liv_area", "overall_qual", "year_remod_add", "central_air")
    } == {
        "neighborhood": "BYTES",
        "gr_liv_area": "FP64",
        "overall_qual": "INT64",
        "year_remod_add": "INT64",
        "central_air": "BYTES",
    }
    assert all(t["shape"] == [-1] for t in meta["inputs"] + meta["outputs"])
    assert "parameters" not in inputs["gr_liv_area"]  # required
    assert inputs["garage_cars"]["parameters"] == {"optional": True}
    assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [
        ("predicted_price", "FP64"),
        ("price_per_sqft", "FP64"),
        ("model_kind", "BYTES"),
    ]
    assert [t["name"] for t in meta["outputs"]] == list(HousePriceResponse.model_fields)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary-inputs"])
def test_infer_n_rows_equals_predict(house_url: str, binary: bool) -> None:
    client = _client(house_url)
    result = client.infer(
        "house_price",
        _house_inputs(HOUSES, binary),
        request_id="req-7",
        outputs=[
            InferRequestedOutput(n, binary_data=False)
            for n in ("predicted_price", "price_per_sqft", "model_kind")
        ],
    )
    expected = httpx.post(f"{house_url}/predict/batch", json={"items": HOUSES}).json()["items"]
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_name"] == "house_price"
    assert result.as_numpy("predicted_price").tolist() == pytest.approx(
        [e["predicted_price"] for e in expected], rel=1e-9
    )
    assert result.as_numpy("price_per_sqft").tolist() == pytest.approx(
        [e["price_per_sqft"] for e in expected], rel=1e-9
    )
    assert result.as_numpy("model_kind").tolist() == [e["model_kind"] for e in expected]


def test_outputs_selection_version_path_and_nested_data(house_url: str) -> None:
    version = httpx.get(f"{house_url}/model").json()["version"]
    result = _client(house_url).infer(
        "house_price",
        _house_inputs(HOUSES[:2]),
        model_version=version,
        outputs=[InferRequestedOutput("predicted_price", binary_data=False)],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["predicted_price"]
    assert result.get_response()["model_version"] == version
    # Shape [N, 1] with nested data (the spec allows both); a null leaves one row's field out.
    body = {
        "inputs": [
            {"name": n, "shape": [2, 1], "datatype": d, "data": [[HOUSES[0][n]], [HOUSES[1][n]]]}
            for n, d in (
                ("neighborhood", "BYTES"),
                ("gr_liv_area", "FP64"),
                ("overall_qual", "INT64"),
                ("year_built", "INT64"),
            )
        ]
        + [{"name": "garage_cars", "shape": [2], "datatype": "INT64", "data": [2, None]}]
    }
    response = httpx.post(f"{house_url}/v2/models/house_price/infer", json=body)
    assert response.status_code == 200, response.text
    got = {o["name"]: o for o in response.json()["outputs"]}["predicted_price"]
    partial = {k: v for k, v in HOUSES[1].items() if k != "garage_cars"}
    expected = httpx.post(
        f"{house_url}/predict/batch", json={"items": [HOUSES[0], partial]}
    ).json()["items"]
    assert got["shape"] == [2] and got["data"] == pytest.approx(
        [e["predicted_price"] for e in expected], rel=1e-9
    )


def _tensors(**columns: tuple[str, list]) -> list[dict]:
    return [
        {"name": n, "shape": [len(v)], "datatype": d, "data": v} for n, (d, v) in columns.items()
    ]


REQUIRED = {
    "neighborhood": ("BYTES", ["NAmes", "OldTown"]),
    "gr_liv_area": ("FP64", [1e3, 9e2]),
    "overall_qual": ("INT64", [5, 6]),
    "year_built": ("INT64", [1970, 1980]),
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"colour": ("BYTES", ["red", "blue"])}, ["'colour'"]),
        ({"gr_liv_area": ("BYTES", ["1000", "900"])}, ["'gr_liv_area'", "BYTES"]),
        ({"overall_qual": ("FP64", [5.0, 6.0])}, ["'overall_qual'", "FP64"]),
        ({"overall_qual": ("INT64", [5, 6, 7])}, ["'overall_qual'", "3 rows", "2"]),
        ({"neighborhood": None}, ["'neighborhood'", "missing"]),
        ({"gr_liv_area": ("FP64", [1e3, 5.0])}, ["'gr_liv_area' row 1", "greater than"]),
        ({"neighborhood": ("BYTES", ["NAmes", "Atlantis"])}, ["'neighborhood' row 1"]),
        ({"year_remod_add": ("INT64", [1990, 1950])}, ["row 1", "year_remod_add"]),
        ({"overall_qual": ("INT64", [5, "6"])}, ["'overall_qual' row 1", "'6'"]),
    ],
    ids=[
        "unknown-input",
        "bytes-for-number",
        "float-for-int",
        "length-mismatch",
        "missing-required",
        "out-of-range",
        "bad-literal",
        "row-validator",
        "string-in-int",
    ],
)
def test_bad_tensors_are_400_naming_them(house_url: str, change: dict, named: list) -> None:
    columns = {k: v for k, v in {**REQUIRED, **change}.items() if v is not None}
    response = httpx.post(
        f"{house_url}/v2/models/house_price/infer", json={"inputs": _tensors(**columns)}
    )
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"]
    assert all(part in response.json()["error"] for part in named), response.json()


@pytest.mark.parametrize(
    ("path", "body", "status", "named"),
    [
        ("/v2/models/nope/infer", {"inputs": _tensors(**REQUIRED)}, 404, "'nope'"),
        (
            "/v2/models/house_price/versions/999/infer",
            {"inputs": _tensors(**REQUIRED)},
            404,
            "'999'",
        ),
        (
            "/v2/models/house_price/infer",
            {"inputs": [{**_tensors(**REQUIRED)[0], "shape": [3]}]},
            400,
            "shape [3]",
        ),
        (
            "/v2/models/house_price/infer",
            {"inputs": [{**_tensors(**REQUIRED)[0], "shape": [1, 2]}]},
            400,
            "one element per row",
        ),
        (
            "/v2/models/house_price/infer",
            {"inputs": _tensors(**REQUIRED), "outputs": [{"name": "price_in_euros"}]},
            400,
            "'price_in_euros'",
        ),
        (
            "/v2/models/house_price/infer",
            {
                "inputs": [
                    *_tensors(**REQUIRED),
                    {"name": "garage_cars", "shape": [11], "datatype": "INT64", "data": [1] * 11},
                ]
            },
            400,
            "11 rows",
        ),
        (
            "/v2/models/house_price/infer",
            {"inputs": _tensors(**{n: (d, v[:1] * 11) for n, (d, v) in REQUIRED.items()})},
            400,
            "1 to 10",
        ),
        ("/v2/models/house_price/infer", {"inputs": "no"}, 400, "inputs"),
    ],
    ids=[
        "unknown-model",
        "unknown-version",
        "shape-vs-data",
        "shape-not-rows",
        "unknown-output",
        "rows-mismatch",
        "too-many-rows",
        "no-inputs",
    ],
)
def test_wrong_model_version_shape_or_output(
    house_url: str, path: str, body: dict, status: int, named: str
) -> None:
    response = httpx.post(f"{house_url}{path}", json=body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"] and named in response.json()["error"]


def test_errors_reach_tritonclient_and_other_routes_keep_their_shape(house_url: str) -> None:
    client = _client(house_url)
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata("grapevine")
    assert raised.value.status() == "404" and "'grapevine'" in raised.value.message()
    assert not client.is_model_ready("house_price", "999")
    bad = httpx.post(f"{house_url}/v2/models/house_price/infer", content=b"{not json")
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    # The opsline routes still answer FastAPI's `detail` shape.
    assert "detail" in httpx.post(f"{house_url}/predict", json={"x": 1}).json()


def test_without_a_model_ready_is_503_and_infer_says_why() -> None:
    with live_server(create_app(ServingSettings(ui=False, reload_interval_s=0))) as url:
        client = _client(url)
        assert client.is_server_live() and not client.is_server_ready()
        ready = httpx.get(f"{url}/v2/health/ready")
        assert ready.status_code == 503 and "opsline run house_price" in ready.json()["error"]
        infer = httpx.post(
            f"{url}/v2/models/house_price/infer", json={"inputs": _tensors(**REQUIRED)}
        )
        assert infer.status_code == 503 and "opsline run house_price" in infer.json()["error"]


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Mixed(BaseModel):
    flag: bool
    colour: Colour
    ratio: float | None = None
    count: int | float = 1
    level: Literal[1, 2, 3] = 1
    mode: Literal["a", "b"] = "a"
    tags: list[str] = []
    extra: dict[str, int] | None = None


def test_datatypes_follow_the_field_types() -> None:
    assert [(t.name, t.datatype, t.kind, t.required) for t in tensors_of(Mixed)] == [
        ("flag", "BOOL", "bool", True),
        ("colour", "BYTES", "bytes", True),
        ("ratio", "FP64", "float", False),
        ("count", "FP64", "float", False),
        ("level", "INT64", "int", False),
        ("mode", "BYTES", "bytes", False),
        ("tags", "BYTES", "json", False),
        ("extra", "BYTES", "json", False),
    ]
    assert tensors_of(Mixed)[6].metadata()["parameters"] == {
        "optional": True,
        "content_type": "application/json",
    }


@pytest.fixture(scope="module")
def grapevine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from opsline import pipeline

    ic = _sibling("image_classification")
    ic.require_grapevine()
    home = tmp_path_factory.mktemp("oip-ic-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(home))
        _, decision = pipeline.run("image_classification", ["data=grapevine", *ic.SMOKE])
        assert decision.promoted, decision.reason
        settings = ServingSettings(
            recipe="image_classification", model_name="grapevine", ui=False, reload_interval_s=0
        )
        with live_server(create_app(settings)) as url:
            yield url


def test_images_as_base64_bytes(grapevine_url: str) -> None:
    ic = _sibling("image_classification")
    images = [base64.b64encode(ic.leaf_bytes(name, 1, 64)).decode() for name in ("Ak", "Nazli")]
    client = _client(grapevine_url)
    meta = client.get_model_metadata("grapevine")
    assert meta["platform"].startswith("opsline-image_classification-")
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [
        ("image", "BYTES"),
        ("top_k", "INT64"),
    ]
    assert {t["name"]: t["datatype"] for t in meta["outputs"]}["labels"] == "BYTES"
    result = client.infer(
        "grapevine", [_input("image", images, "BYTES"), _input("top_k", [2, 3], "INT64")]
    )
    labels = [json.loads(text) for text in result.as_numpy("labels").tolist()]
    expected = httpx.post(
        f"{grapevine_url}/predict/batch",
        json={"items": [{"image": images[0], "top_k": 2}, {"image": images[1], "top_k": 3}]},
    ).json()["items"]
    assert labels == [e["labels"] for e in expected] and [len(x) for x in labels] == [2, 3]
    predicted = [json.loads(t) for t in result.as_numpy("predicted").tolist()]
    assert predicted == [e["predicted"] for e in expected]
    bad = httpx.post(
        f"{grapevine_url}/v2/models/grapevine/infer",
        json={"inputs": _tensors(image=("BYTES", [images[0], "bm90IGFuIGltYWdl"]))},
    )  # base64 of "not an image"
    assert bad.status_code == 400 and "'image' row 1" in bad.json()["error"]


@pytest.fixture(scope="module")
def lm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import torch

    torch.set_num_threads(1)
    tg = _sibling("text_generation")
    app = tg.make_tiny_app(
        tg.build_tiny_lm(tmp_path_factory.mktemp("oip-lm") / "model"), reload_interval_s=0
    )
    with live_server(app) as url:
        yield url
    tg.close_engine(app)


def test_text_generation_prompts_as_bytes(lm_url: str) -> None:
    client = _client(lm_url)
    meta = client.get_model_metadata("text_generation")
    assert {t["name"]: t["datatype"] for t in meta["inputs"]} == {
        "prompt": "BYTES",
        "max_new_tokens": "INT64",
        "temperature": "FP64",
        "top_p": "FP64",
        "top_k": "INT64",
        "seed": "INT64",
    }
    prompts = ["To be, or not", "Ça va, café ☃"]
    result = client.infer(
        "text_generation",
        [
            _input("prompt", prompts, "BYTES"),
            _input("max_new_tokens", [5, 3], "INT64"),
            _input("temperature", [0.0, 0.0], "FP64"),
        ],
    )
    expected = [
        httpx.post(
            f"{lm_url}/predict", json={"prompt": p, "max_new_tokens": n, "temperature": 0}
        ).json()
        for p, n in zip(prompts, [5, 3], strict=True)
    ]
    assert result.as_numpy("text").tolist() == [e["text"] for e in expected]
    assert result.as_numpy("tokens").tolist() == [e["tokens"] for e in expected]
    assert result.as_numpy("finish_reason").tolist() == [e["finish_reason"] for e in expected]
