"""The model registry: versions, the promotion gate, and resolving a model URI to files.

A registered version's ``source`` is the run's ``model`` artifact folder (safetensors /
native text weights + JSON). Lineage (data version, git commit, kind) and the test metrics
are version tags, so the promotion gate and ``GET /model`` need no second store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsline.errors import NoModelError, UsageError
from opsline.tracking.runs import client
from opsline.workspace import home

METRIC_TAG_PREFIX = "metric."


@dataclass
class ModelRef:
    """A model resolved to a local directory, with what is known about its version."""

    local_dir: Path
    name: str
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    data_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    kind: str | None = None


@dataclass
class Promotion:
    """The gate's decision; ``reason`` is also recorded on the version in the registry."""

    promoted: bool
    version: str
    previous: str | None
    reason: str


def _not_found(error: Exception) -> bool:
    return (
        "RESOURCE_DOES_NOT_EXIST" in str(getattr(error, "error_code", ""))
        or "not found" in str(error).lower()
        or "does not exist" in str(error).lower()
    )


def register(
    name: str,
    run_id: str,
    source: str,
    tags: dict[str, Any],
    metrics: dict[str, float],
    uri: str | None = None,
) -> str:
    """Create a new version of registered model ``name``; returns the version number."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(uri)
    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as error:
        if "RESOURCE_ALREADY_EXISTS" not in str(error.error_code):
            raise
    all_tags = {k: str(v) for k, v in tags.items()}
    all_tags.update({METRIC_TAG_PREFIX + k: repr(float(v)) for k, v in metrics.items()})
    version = mlflow_client.create_model_version(name, source=source, run_id=run_id, tags=all_tags)
    return str(version.version)


def _version_metrics(version: Any) -> dict[str, float]:
    return {
        k[len(METRIC_TAG_PREFIX) :]: float(v)
        for k, v in (version.tags or {}).items()
        if k.startswith(METRIC_TAG_PREFIX)
    }


def _get_version(mlflow_client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version(name, str(version))
    except MlflowException as error:
        if _not_found(error):
            raise NoModelError(
                f"Model {name!r} has no version {version}; see `opsline models {name}`."
            ) from None
        raise


def _get_alias(mlflow_client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if _not_found(error):
            return None
        raise


def promote(
    name: str,
    version: str,
    metric: str,
    greater_is_better: bool,
    alias: str = "production",
    force: bool = False,
    uri: str | None = None,
    current_value: float | None = None,
    basis: str | None = None,
    shadow: Callable[[], int] | None = None,
    shadow_required: int = 0,
) -> Promotion:
    """Move ``alias`` to ``version`` if it is at least as good on ``test_<metric>``.

    The candidate must carry the metric; ``force`` skips the comparison (and says so).
    ``current_value`` replaces the production version's registered metric when the caller
    re-evaluated it on the candidate's test split (``basis`` says on what), so both sides
    are measured on the same data. With ``shadow_required`` > 0 the candidate must first
    have answered that many requests in shadow beside production (``shadow()`` counts
    them; asked only when there is a production version to shadow).
    """
    mlflow_client = client(uri)
    candidate = _get_version(mlflow_client, name, version)
    current = _get_alias(mlflow_client, name, alias)
    key = f"test_{metric}"
    new_value = _version_metrics(candidate).get(key)
    old_value = _version_metrics(current).get(key) if current is not None else None
    if current is not None and current_value is not None:
        old_value = current_value
    previous = str(current.version) if current is not None else None
    on = f" ({basis})" if basis and current_value is not None else ""

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    if previous == str(version):
        decision = Promotion(
            False, str(version), previous, f"version {version} already holds @{alias}"
        )
        return decision
    compared = (
        shadow()
        if shadow is not None and shadow_required > 0 and not force and current is not None
        else None
    )
    if force:
        decision = Promotion(
            True,
            str(version),
            previous,
            f"forced: {key} {fmt(new_value)} vs v{previous} {fmt(old_value)}",
        )
    elif compared is not None and compared < shadow_required:
        decision = Promotion(
            False,
            str(version),
            previous,
            f"version {version} answered {compared} requests in shadow beside "
            f"v{previous}; the gate requires {shadow_required} "
            "(promotion.shadow_min_requests): serve it with "
            f"OPSLINE_SHADOW_MODEL_URI=models:/{name}/{version} first",
        )
    elif new_value is None or not math.isfinite(new_value):
        decision = Promotion(
            False,
            str(version),
            previous,
            f"version {version} has no {key}; evaluate it first or use --force",
        )
    elif old_value is None:
        decision = Promotion(
            True, str(version), previous, f"first @{alias}: {key} {fmt(new_value)}"
        )
    else:
        better = new_value >= old_value if greater_is_better else new_value <= old_value
        comparison = "at least as good as" if better else "worse than"
        decision = Promotion(
            better,
            str(version),
            previous,
            f"{key} {fmt(new_value)} is {comparison} v{previous} {fmt(old_value)}{on}",
        )
    if decision.promoted:
        mlflow_client.set_registered_model_alias(name, alias, str(version))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    verdict = "promoted" if decision.promoted else "not promoted"
    mlflow_client.set_model_version_tag(
        name, str(version), f"promotion.{alias}", f"{stamp} {verdict}: {decision.reason}"
    )
    return decision


def tag_version(name: str, version: str, tags: dict[str, str], uri: str | None = None) -> None:
    """Set tags on a model version (e.g. the retrain loop's trigger and gate outcome)."""
    mlflow_client = client(uri)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, str(version), key, str(value))


def data_versions(
    name: str, version: str, alias: str, uri: str | None = None
) -> tuple[str | None, str | None, str | None]:
    """The candidate's data version, the version holding ``alias`` and its data version
    (``None`` where unknown), read from the version tags without downloading anything."""
    mlflow_client = client(uri)
    candidate = _get_version(mlflow_client, name, version)
    current = _get_alias(mlflow_client, name, alias)
    return (
        (candidate.tags or {}).get("data_version"),
        None if current is None else str(current.version),
        None if current is None else (current.tags or {}).get("data_version"),
    )


def list_versions(name: str, uri: str | None = None) -> list[dict[str, Any]]:
    """Every version of ``name`` (newest first) with aliases, kind and test metrics."""
    mlflow_client = client(uri)
    versions = mlflow_client.search_model_versions(f"name = '{name}'")
    if not versions:
        return []
    # search results carry no aliases; the registered model has the alias -> version map.
    aliases: dict[str, list[str]] = {}
    for alias, version in (mlflow_client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        rows.append(
            {
                "version": str(v.version),
                "aliases": aliases.get(str(v.version), []),
                "kind": (v.tags or {}).get("kind"),
                "run_id": v.run_id,
                "metrics": _version_metrics(v),
                # the optimised backend's parity gate (onnx / int8), if it has one
                "parity": {
                    k.removesuffix(".parity"): t
                    for k, t in (v.tags or {}).items()
                    if k.endswith(".parity")
                },
            }
        )
    return rows


_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def _download(source: str, name: str, version: str, uri: str | None) -> Path:
    """Copy a version's files into the workspace cache once (versions are immutable)."""
    import mlflow.artifacts

    from opsline.tracking.runs import tracking_uri

    target = home() / "models" / name / version
    if (target / "model").is_dir():
        return target / "model"
    target.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(target), tracking_uri=tracking_uri(uri)
    )
    return Path(local)


def current_version(model_uri: str, tracking_uri: str | None = None) -> str | None:
    """The version ``models:/NAME@ALIAS`` (or ``models:/NAME/N``) names now, without
    downloading anything; ``None`` for a directory or a ``runs:/`` URI (nothing to follow).

    Raises:
        NoModelError: the alias or version does not exist (yet).
    """
    match = _MODELS_URI.match(model_uri)
    if not match:
        return None
    mlflow_client = client(tracking_uri)
    if match["alias"]:
        version = _get_alias(mlflow_client, match["name"], match["alias"])
        if version is None:
            raise NoModelError(f"No model {match['name']!r} has the alias {match['alias']!r} yet.")
        return str(version.version)
    return str(_get_version(mlflow_client, match["name"], match["version"]).version)


def resolve_model(
    recipe_name: str, model_uri: str | None = None, tracking_uri: str | None = None
) -> ModelRef:
    """Resolve ``models:/name@alias``, ``models:/name/N``, ``runs:/id/path`` or a directory.

    ``None`` means ``models:/<recipe>@production``.

    Raises:
        NoModelError: nothing registered / no such alias or version (says how to fix it).
        UsageError: a URI of an unknown form.
    """
    from mlflow.exceptions import MlflowException

    model_uri = model_uri or f"models:/{recipe_name}@production"
    if Path(model_uri).is_dir():
        return ModelRef(local_dir=Path(model_uri).resolve(), name=recipe_name)
    mlflow_client = client(tracking_uri)
    if model_uri.startswith("runs:/"):
        import mlflow.artifacts

        run_id = model_uri.split("/")[1]
        target = home() / "runs" / run_id
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=model_uri,
                dst_path=str(target),
                tracking_uri=mlflow_client.tracking_uri,
            )
        except MlflowException as error:
            raise NoModelError(f"Cannot load {model_uri}: {str(error).splitlines()[0]}") from None
        return ModelRef(local_dir=Path(local), name=recipe_name, run_id=run_id)
    match = _MODELS_URI.match(model_uri)
    if not match:
        raise UsageError(
            f"Unsupported model URI {model_uri!r}: use models:/NAME@ALIAS, "
            "models:/NAME/VERSION, runs:/RUN_ID/model or a local directory."
        )
    name, alias = match["name"], match["alias"]
    if alias:
        version = _get_alias(mlflow_client, name, alias)
        if version is None:
            registered = bool(mlflow_client.search_model_versions(f"name = '{name}'"))
            hint = (
                f"promote one with `opsline promote {name} --version N`"
                if registered
                else f"train one with `opsline run {recipe_name}`"
            )
            raise NoModelError(f"No model {name!r} has the alias {alias!r} yet: {hint}.")
    else:
        version = _get_version(mlflow_client, name, match["version"])
    tags = version.tags or {}
    return ModelRef(
        local_dir=_download(version.source, name, str(version.version), tracking_uri),
        name=name,
        version=str(version.version),
        alias=alias,
        run_id=version.run_id,
        data_version=tags.get("data_version"),
        metrics=_version_metrics(version),
        kind=tags.get("kind"),
    )
