"""Fixtures of the deploy tests: the rendered overlays and the real app over an empty
workspace, each made once for the package (rendering and the app's MLflow store take
seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opsline.serving.app import create_app
from opsline.serving.settings import ServingSettings
from tests.deploy.manifests import K8S, OVERLAYS, kustomize


@pytest.fixture(scope="package")
def rendered() -> dict[str, list[dict[str, Any]]]:
    # The base too: an overlay may override a base value, which must still be valid.
    return {
        "base": kustomize(K8S / "base"),
        **{name: kustomize(K8S / "overlays" / name) for name in OVERLAYS},
    }


@pytest.fixture(scope="package")
def empty_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real house_price app over an empty workspace: the state of every pod before the
    training Job has promoted a model. One per package: creating its MLflow store takes
    seconds."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSLINE_HOME", str(tmp_path_factory.mktemp("empty-workspace")))
        with TestClient(
            create_app(ServingSettings(ui=False, drift_interval_s=0, reload_interval_s=0)),
            raise_server_exceptions=False,
        ) as client:
            yield client
