"""``GET /model``: which model version is served and where it came from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from opsline.serving.deps import ModelDep
from opsline.serving.openapi import errors

router = APIRouter(tags=["model"])


class ModelInfo(BaseModel):
    name: str
    version: str | None = None
    alias: str | None = None
    uri: str
    run_id: str | None = None
    data_version: str | None = None
    kind: str | None = None
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Test-split metrics recorded at registration"
    )
    predictor: dict[str, Any] = Field(default_factory=dict)
    reload: dict[str, Any] = Field(
        default_factory=dict,
        description="Which URI the server follows, how often it "
        "polls, and the last reload attempts",
    )
    monitoring: dict[str, Any] = Field(
        default_factory=dict,
        description="The prediction log, live quality from "
        "feedback, and the retrain loop's actions",
    )


@router.get(
    "/model",
    response_model=ModelInfo,
    summary="The served model and its lineage",
    responses=errors(503, d503="No model loaded; `detail` says why and what to do"),
)
async def model_info(model: ModelDep, request: Request) -> dict[str, Any]:
    state = request.app.state
    return {
        **model.describe(),
        "reload": state.reloader.describe(),
        "monitoring": {
            "prediction_log": state.recorder.describe(),
            "quality": state.quality.describe(),
            **{name: describe() for name, describe in state.monitoring_views.items()},
        },
    }
