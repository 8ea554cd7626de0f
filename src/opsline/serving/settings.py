"""Server settings, read from ``OPSLINE_*`` environment variables (not Hydra).

The serving container is configured the twelve-factor way: e.g.
``OPSLINE_RECIPE=house_price OPSLINE_MODEL_URI=models:/house_price/3 OPSLINE_PORT=8080``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    """Everything ``opsline serve`` and ``create_app`` need.

    Attributes:
        recipe: registered recipe whose schemas and predictor the app serves.
        model_name: registered model to serve when ``model_uri`` is not set; ``None`` = the
            recipe name. Recipes with one model per data source need it (e.g.
            ``OPSLINE_MODEL_NAME=grapevine`` for ``image_classification``).
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model`` or a
            directory; ``None`` means ``models:/<model_name or recipe>@production``.
        tracking_uri: MLflow tracking/registry URI; ``None`` = the embedded workspace store.
        host, port: where uvicorn listens.
        max_batch_size: most items accepted by ``POST /predict/batch``.
        max_body_bytes: largest prediction request body accepted (413 above it), checked
            while reading so a huge upload is refused before it is parsed.
        max_concurrent_inference: ``predict`` calls allowed to run at once in the threadpool;
            more would only make CPU-bound models fight over cores.
        ui: mount the recipe's Gradio form at ``/ui``.
        log_level: uvicorn log level.
        log_format: ``text`` (uvicorn's format) or ``json`` (``OPSLINE_LOG_FORMAT``): one JSON
            object per line with timestamp, level, logger, message and the request id, for
            the server's own loggers and uvicorn's access log (:mod:`opsline.serving.logs`).
        api_key: the key the ``/jobs`` endpoints require (``X-API-Key`` or ``Authorization:
            Bearer``); unset = those endpoints are refused.
        max_jobs: training/evaluation jobs allowed to be queued or running at once (429
            above it); each job is a process using the CPU cores.
        history_interval_seconds: how often the monitoring page's sampler reads the metrics
            (``/ui/monitor``, ``GET /metrics/history``).
        batch_max_size: most rows one ``predictor.predict`` call gets from the batcher
            (``OPSLINE_BATCH_MAX_SIZE``); a predictor may declare a smaller ``max_batch_size``.
        batch_max_delay_ms: under load, how long the batcher may wait for a batch to grow
            once the model is free (``OPSLINE_BATCH_MAX_DELAY_MS``; never more than a tenth of
            the last batch's own time); an idle server never waits. 0 = dispatch whatever is
            queued as soon as the model is free.
        batch_max_queue: rows allowed to wait (``OPSLINE_BATCH_MAX_QUEUE``); above it
            ``/predict`` answers 503 with ``Retry-After`` instead of an unbounded wait.
        backend: ``auto`` | ``onnx`` | ``native`` (``OPSLINE_BACKEND``): ``auto`` serves
            ``model.onnx`` when it passed its parity check at registration.
        reload_interval_s: poll the registry alias every this many seconds and hot-reload a
            new version (``OPSLINE_RELOAD_INTERVAL_S``); 0 = never poll (``POST
            /admin/reload`` still works).
        drift_interval_s: recompute data drift (``GET /drift``, ``opsline_drift_*``) every
            this many seconds, off the request path (``OPSLINE_DRIFT_INTERVAL_S``); 0 = only
            on demand (``GET /drift?refresh=true``).
        drift_window: the logged requests compared with the model's reference
            (``OPSLINE_DRIFT_WINDOW``): the last N (``1000``) or a time span (``24h``, ``30m``).
        drift_min_rows: fewer logged requests in the window than this give "not enough
            data", not a verdict (``OPSLINE_DRIFT_MIN_ROWS``).
        drift_share: the verdict is "drift" when at least this share of the monitored
            features drifted (``OPSLINE_DRIFT_SHARE``); ``None`` = the recipe's own, by
            default more than chance explains (2 of 4 features, 5 of 33; see
            :func:`opsline.monitoring.drift.chance_share`).
        prediction_log: record every prediction (``OPSLINE_PREDICTION_LOG``); each batch's
            rows are committed before its responses leave (group commit).
        prediction_log_uri: where (``OPSLINE_PREDICTION_LOG_URI``): ``None`` = SQLite (WAL)
            at ``.opsline/predictions.db``; ``postgresql+psycopg2://…`` for several replicas.
        prediction_log_retention_days, prediction_log_max_rows: rows older than this many
            days, and the oldest rows beyond this many, are deleted hourly (0 = keep).
        quality_window: live quality (``opsline_live_quality``) is computed over the newest
            this many predictions that have feedback (``OPSLINE_QUALITY_WINDOW``).
        shadow_model_uri: a candidate that scores every batch off the response path
            (``OPSLINE_SHADOW_MODEL_URI``; same forms as ``model_uri``); its answers are
            logged beside the served model's for ``opsline monitor compare``, never returned.
            ``None`` = no shadow. An alias (``models:/NAME@candidate``) is re-resolved every
            ``reload_interval_s``.
        shadow_max_queue: rows allowed to wait for the shadow (``OPSLINE_SHADOW_MAX_QUEUE``);
            a batch that does not fit is skipped and counted, so a slow shadow never holds
            up the served model or grows memory.
        retrain_policy: the retrain loop (``OPSLINE_RETRAIN_POLICY``): a policy name in
            ``configs/monitor`` or a YAML path; ``auto`` = the recipe's own file if there is
            one, else ``default``; ``off`` = no loop. The loop acts on each drift check
            (so ``drift_interval_s`` 0 means it never runs by itself) and starts its
            ``retrain`` job through the same job slots as ``/jobs``.
    """

    model_config = SettingsConfigDict(
        env_prefix="OPSLINE_", extra="ignore", protected_namespaces=()
    )

    recipe: str = "house_price"
    model_name: str | None = None
    model_uri: str | None = None
    tracking_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_batch_size: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_concurrent_inference: int = Field(default=2, ge=1)
    ui: bool = True
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    api_key: SecretStr | None = None
    max_jobs: int = Field(default=1, ge=1)
    history_interval_seconds: float = Field(default=2.0, gt=0, le=3600)
    batch_max_size: int = Field(default=256, ge=1, le=100_000)
    batch_max_delay_ms: float = Field(default=10.0, ge=0, le=10_000)
    batch_max_queue: int = Field(default=4096, ge=1)
    backend: Literal["auto", "onnx", "native"] = "auto"
    reload_interval_s: float = Field(default=30.0, ge=0)
    drift_interval_s: float = Field(default=60.0, ge=0)
    drift_window: str = Field(default="1000", pattern=r"^\s*(\d+|\d+(\.\d+)?\s*[smhdSMHD])\s*$")
    drift_min_rows: int = Field(default=100, ge=1)
    drift_share: float | None = Field(default=None, gt=0, le=1)
    prediction_log: bool = True
    prediction_log_uri: str | None = None
    prediction_log_retention_days: float = Field(default=30.0, ge=0)
    prediction_log_max_rows: int = Field(default=1_000_000, ge=0)
    quality_window: int = Field(default=1000, ge=1)
    shadow_model_uri: str | None = None
    shadow_max_queue: int = Field(default=1024, ge=1)
    retrain_policy: str = "auto"

    @property
    def resolved_model_uri(self) -> str:
        """The model URI actually used."""
        return self.model_uri or f"models:/{self.model_name or self.recipe}@production"
