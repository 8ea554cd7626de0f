"""``/jobs``: train and evaluate any registered recipe over HTTP, in worker processes.

``POST /jobs/train`` and ``POST /jobs/evaluate`` check the recipe and overrides (composing
the config exactly as the worker will), queue the job and answer 202 at once; the work runs
in ``python -m opsline.jobs.worker``. ``GET /jobs/{id}`` reports status, progress, metrics,
the model version and the tail of the log. All routes need the API key (:mod:`..auth`).

No ``from __future__ import annotations``: FastAPI reads the annotations at runtime.
"""

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from opsline.errors import UsageError
from opsline.jobs.manager import JobAlreadyFinished, JobManager, JobNotFound, log_tail
from opsline.jobs.store import STATUSES, Job, JobLimitError
from opsline.serving.auth import require_api_key
from opsline.serving.deps import SettingsDep
from opsline.serving.openapi import errors
from opsline.serving.routing import json_route
from opsline.serving.settings import ServingSettings

MAX_OVERRIDES = 50
LOG_TAIL_LINES = 50
# Hydra's compose API keeps global state: one composition at a time in this process.
_compose_lock = threading.Lock()


def _key_value(value: str) -> str:
    key, sep, _ = value.partition("=")
    if not sep or not key.strip("+~ "):
        raise ValueError(f"override {value!r} is not of the form key=value")
    return value


Override = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_key_value)]


class TrainRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"recipe": "house_price", "overrides": ["model=gbm"]}]},
    )

    recipe: str | None = Field(
        default=None, description="Registered recipe; default: the served one"
    )
    overrides: list[Override] = Field(
        default_factory=list,
        max_length=MAX_OVERRIDES,
        description="Hydra overrides, `key=value` each, as on the command line",
    )


class EvaluateRequest(TrainRequest):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"recipe": "house_price"}, {"model": "models:/house_price/3"}]
        },
    )

    model: str | None = Field(
        None,
        max_length=1000,
        description="Model URI (`models:/NAME/N`, `models:/NAME@ALIAS`, "
        "`runs:/ID/model`); default: the recipe's "
        "production model",
    )


class JobOut(BaseModel):
    id: str
    kind: Literal["train", "evaluate", "retrain"]
    recipe: str
    overrides: list[str]
    model: str | None = Field(default=None, description="Model URI asked for (evaluate jobs)")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(description="0–1; stage-level, training filled per epoch")
    message: str = Field(description="Current stage or last progress message")
    metrics: dict[str, float] = Field(description="Final metrics (val_*/test_* for training)")
    model_name: str | None = Field(default=None, description="Registered model of `model_version`")
    model_version: str | None = Field(
        default=None, description="Registered (train) or evaluated version"
    )
    error: str | None = None
    pid: int | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None


class JobDetail(JobOut):
    history: list[dict[str, float]] = Field(description="Per-epoch metrics, `step` = epoch")
    log_tail: list[str] = Field(description=f"Last {LOG_TAIL_LINES} lines of the job log")


class JobList(BaseModel):
    items: list[JobOut]


def start_manager(settings: ServingSettings) -> JobManager:
    """The app's job manager for the current workspace, stale jobs already reconciled."""
    manager = JobManager(max_jobs=settings.max_jobs)
    manager.reconcile()
    return manager


def get_manager(request: Request) -> JobManager:
    manager = getattr(request.app.state, "jobs", None)
    if manager is None:  # an app used without its lifespan (no `with TestClient(...)`)
        manager = request.app.state.jobs = start_manager(request.app.state.settings)
    return manager


ManagerDep = Annotated[JobManager, Depends(get_manager)]


def _invalid(loc: list[Any], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


def _compose(recipe: str, overrides: list[str]) -> None:
    from opsline.config import load_config

    with _compose_lock:
        load_config(recipe, overrides)


def check_request(recipe: str, overrides: list[str]) -> None:
    """Compose the config as the worker will; 422 naming ``recipe`` or the bad override."""
    from opsline.recipes.registry import list_recipes

    valid = list_recipes()
    if recipe not in valid:
        raise _invalid(
            ["body", "recipe"],
            f"Unknown recipe {recipe!r}. Valid recipes: {', '.join(valid) or '(none)'}.",
        )
    try:
        _compose(recipe, overrides)
    except UsageError as error:
        if not overrides:
            raise _invalid(["body", "recipe"], str(error)) from None
        # The shortest failing prefix ends with the culprit (binary search: few composes).
        low, high = 0, len(overrides) - 1
        while low < high:
            middle = (low + high) // 2
            try:
                _compose(recipe, overrides[: middle + 1])
                low = middle + 1
            except UsageError:
                high = middle
        raise _invalid(["body", "overrides", low], str(error)) from None


def _with_tracking(overrides: list[str], settings: ServingSettings) -> list[str]:
    # Jobs register into the registry the server loads from, unless the caller says otherwise.
    if settings.tracking_uri and not any(
        o.lstrip("+").startswith("tracking.uri=") for o in overrides
    ):
        return [*overrides, f"tracking.uri={settings.tracking_uri}"]
    return list(overrides)


def _out(job: Job) -> dict[str, Any]:
    data = job.to_dict()
    data.pop("history")
    data.pop("log_path")
    return data


def _detail(job: Job) -> dict[str, Any]:
    return {**_out(job), "history": job.history, "log_tail": log_tail(job.log_path, LOG_TAIL_LINES)}


_DISABLED = "No OPSLINE_API_KEY configured: job endpoints are disabled"
_START = errors(
    400,
    401,
    413,
    415,
    422,
    429,
    503,
    d422="Unknown recipe or bad override; `loc` names it",
    d429="OPSLINE_MAX_JOBS jobs are already queued or running; `Retry-After` says when to retry",
    d503=_DISABLED,
)
# A job body is a recipe and a few overrides: far below this.
MAX_BODY_BYTES = 1 << 20

router = APIRouter(
    prefix="/jobs",
    tags=["jobs"],
    dependencies=[Depends(require_api_key)],
    route_class=json_route(MAX_BODY_BYTES),
)


def _start(
    kind: str,
    body: TrainRequest,
    manager: JobManager,
    settings: ServingSettings,
    response: Response,
    model: str | None = None,
) -> dict[str, Any]:
    recipe = body.recipe or settings.recipe
    overrides = _with_tracking(list(body.overrides), settings)
    check_request(recipe, overrides)
    try:
        job = manager.start(kind, recipe, overrides, model=model)
    except JobLimitError as error:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, detail=str(error), headers={"Retry-After": "30"}
        ) from None
    response.headers["Location"] = f"/jobs/{job.id}"
    return _out(job)


@router.post(
    "/train",
    status_code=202,
    response_model=JobOut,
    responses=_START,
    summary="Start training a recipe in a worker process",
)
def start_train(
    body: TrainRequest, manager: ManagerDep, settings: SettingsDep, response: Response
) -> dict[str, Any]:
    return _start("train", body, manager, settings, response)


@router.post(
    "/evaluate",
    status_code=202,
    response_model=JobOut,
    responses=_START,
    summary="Start evaluating a registered model on the test split",
)
def start_evaluate(
    body: EvaluateRequest, manager: ManagerDep, settings: SettingsDep, response: Response
) -> dict[str, Any]:
    return _start("evaluate", body, manager, settings, response, model=body.model)


@router.get(
    "",
    response_model=JobList,
    responses=errors(401, 422, 503, d503=_DISABLED),
    summary="Jobs, newest first",
)
def list_jobs(
    manager: ManagerDep,
    status_: Annotated[Literal[STATUSES] | None, Query(alias="status")] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return {"items": [_out(job) for job in manager.list(status_, limit)]}


@router.get(
    "/{job_id}",
    response_model=JobDetail,
    responses=errors(401, 404, 422, 503, d404="No such job", d503=_DISABLED),
    summary="One job: status, progress, metrics, model version, log tail",
)
def get_job(job_id: str, manager: ManagerDep) -> dict[str, Any]:
    try:
        return _detail(manager.get(job_id))
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job {job_id!r}.") from None


@router.delete(
    "/{job_id}",
    status_code=202,
    response_model=JobOut,
    responses=errors(
        401,
        404,
        409,
        422,
        503,
        d404="No such job",
        d409="The job already finished",
        d503=_DISABLED,
    ),
    summary="Cancel a job (its worker is stopped)",
)
def cancel_job(job_id: str, manager: ManagerDep) -> dict[str, Any]:
    try:
        return _out(manager.cancel(job_id))
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job {job_id!r}.") from None
    except JobAlreadyFinished as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
