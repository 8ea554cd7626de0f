"""The lifecycle stages as plain functions: prepare → validate → train → evaluate → promote.

The CLI is a thin shell over these; tests and the HTTP job runner call them directly.
Each stage takes the recipe name and Hydra overrides, so every entry point composes the
same configuration the same way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.config import load_config
from opsline.errors import DataValidationError, UsageError
from opsline.recipes.registry import get_recipe
from opsline.workspace import data_dir, home

if TYPE_CHECKING:  # pragma: no cover
    from omegaconf import DictConfig

    from opsline.data.dataset import Dataset
    from opsline.data.validation import ValidationResult
    from opsline.export.parity import ParityRecord
    from opsline.recipes.base import Recipe
    from opsline.tracking.registry import Promotion
    from opsline.tracking.runs import TrainingRun

log = logging.getLogger(__name__)

Say = Callable[[str], None]
# Optional observers (the HTTP job worker uses them for progress): ``stage`` is told each
# step of ``train`` by name, ``on_epoch(step, metrics)`` each per-epoch metric batch.
Stage = Callable[[str], None]
EpochHook = Callable[[int, dict[str, float]], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class TrainResult:
    run_id: str
    version: str | None  # None when trained with register=False (e.g. a sweep trial)
    kind: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str = ""  # the run's exported model folder (what a version would point at)
    tags: dict[str, str] = field(default_factory=dict)  # lineage tags a version would carry


def prepare(recipe_name: str, overrides: Sequence[str] = (), say: Say = _quiet) -> Dataset:
    """Raw data → Parquet splits + manifest under the workspace (plus the labelled
    production rows with ``data.include_feedback=true``)."""
    from opsline.data.dataset import write_dataset

    cfg = load_config(recipe_name, overrides)
    recipe = get_recipe(recipe_name)
    splits = recipe.prepare(cfg)
    if cfg.get("data") is not None and cfg.data.get("include_feedback"):
        from opsline.data.feedback import add_feedback_rows

        splits, added = add_feedback_rows(recipe, cfg, splits)
        say(f"Added {added} labelled production rows from the prediction log.")
    return write_dataset(
        splits,
        data_dir(recipe.model_name(cfg)),
        recipe_name,
        extras=recipe.manifest_extras(cfg, splits),
    )


def _dataset(recipe_name: str, name: str | None = None) -> Dataset:
    """The prepared dataset in ``data/<name>`` (``name``: the recipe's model name for the
    config, e.g. one per data source; default the recipe name)."""
    from opsline.data.dataset import load_dataset

    return load_dataset(data_dir(name or recipe_name), recipe_name)


def validate(recipe_name: str, overrides: Sequence[str] = ()) -> ValidationResult:
    """Run the recipe's checks on the prepared dataset (never raises on failed checks)."""
    return _run_checks(recipe_name, load_config(recipe_name, overrides), get_recipe(recipe_name))[1]


def _run_checks(
    recipe_name: str, cfg: DictConfig, recipe: Recipe
) -> tuple[Dataset, ValidationResult]:
    """The prepared dataset and its validation result, also recorded for Prometheus (the
    server's /metrics exposes it)."""
    from opsline.data.validation import validate_dataset
    from opsline.monitoring.validation import record_validation

    name, checks = recipe.model_name(cfg), recipe.checks(cfg)
    dataset = _dataset(recipe_name, name)
    result = validate_dataset(dataset, checks)
    record_validation(name, result, checks)
    return dataset, result


def _validated_dataset(recipe_name: str, cfg: DictConfig, recipe: Recipe) -> Dataset:
    dataset, result = _run_checks(recipe_name, cfg, recipe)
    if not result.ok:
        raise DataValidationError(
            "Training refused: the dataset failed validation.\n" + result.report()
        )
    return dataset


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


class _EpochTap:
    """A training run that also reports per-epoch metrics (those logged with a step)."""

    def __init__(self, run: TrainingRun, on_epoch: EpochHook):
        self._run = run
        self._on_epoch = on_epoch

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._run.log_metrics(metrics, step=step)
        if step is not None:
            self._on_epoch(int(step), dict(metrics))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._run.log_text(text, artifact_file)

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        self._run.log_dict(data, artifact_file)

    def __getattr__(self, name: str) -> Any:  # anything else the run offers, unchanged
        return getattr(self._run, name)


def train(
    recipe_name: str,
    overrides: Sequence[str] = (),
    say: Say = _quiet,
    *,
    stage: Stage = _quiet,
    on_epoch: EpochHook | None = None,
    parent_run_id: str | None = None,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> TrainResult:
    """Validate, train, evaluate on val and test, log everything, register a version.

    ``stage`` hears ``validating``, ``training``, ``evaluating``, ``registering`` as they
    start; ``on_epoch`` receives every metric batch a recipe logs with a step (an epoch).
    ``parent_run_id`` nests the run under another (a sweep's trials); ``register=False``
    logs the model files but creates no version (``result.version`` is None); ``tags``
    are extra run tags.
    """
    from omegaconf import OmegaConf

    from opsline.tracking import registry
    from opsline.tracking.runs import git_commit, start_run
    from opsline.training.distributed import LocalRanks, plan

    cfg = load_config(recipe_name, overrides)
    recipe = get_recipe(recipe_name)
    world = plan(cfg.trainer)  # trainer=ddp: every rank runs this function
    if not world.is_zero:
        return _train_rank(recipe_name, cfg, recipe)
    model_name = recipe.model_name(cfg)  # the registered model (= recipe name by default)
    stage("validating")
    dataset = _validated_dataset(recipe_name, cfg, recipe)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    kind = str(cfg.model.name)
    lineage = {
        "recipe": recipe_name,
        "kind": kind,
        "data_version": dataset.version,
        "git_commit": git_commit(),
        "overrides": " ".join(overrides) or "(none)",
    }
    say(f"Training {recipe_name} model={kind} on data {dataset.version[:12]} ...")
    work = home() / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    out_dir = tempfile.mkdtemp(prefix=f"{recipe_name}-", dir=work)
    run_tags = {
        **lineage,
        **({"world_size": str(world.size)} if world.size > 1 else {}),
        **(tags or {}),
    }
    try:
        # Ranks 1..N-1 of a one-node ddp run start here, before the run, so their start-up
        # overlaps rank 0's; they are stopped (if still alive) however this ends.
        with (
            LocalRanks(world, recipe_name, overrides, home() / "logs" / "ddp") as ranks,
            start_run(
                cfg.tracking.experiment or recipe_name,
                run_name=f"{recipe_name}-{kind}",
                uri=cfg.tracking.uri,
                tags=run_tags,
                parent_run_id=parent_run_id,
            ) as run,
        ):
            run.log_text(OmegaConf.to_yaml(resolved), "config.yaml")
            run.log_params(_flatten(resolved))
            stage("training")
            try:
                trained = recipe.train(
                    cfg,
                    dataset,
                    run if on_epoch is None else _EpochTap(run, on_epoch),
                    out_dir=Path(out_dir),
                )
            except Exception as error:
                _blame_rank(ranks, error)
                raise
            # Every rank must have finished its part before rank 0's model counts.
            ranks.join(timeout=float(cfg.trainer.get("ddp_timeout_seconds") or 1800))
            # ONNX beside the native weights, checked against them on the test split; the
            # record travels in the directory and onto the version (a failed export still
            # registers the native model, and the server never serves that ONNX file).
            # Unregistered runs (sweep trials) skip it: nothing will serve them as they are.
            parity = export_onnx(recipe, cfg, trained.model_dir, dataset, say) if register else None
            stage("evaluating")
            # Evaluate what `auto` will serve (ONNX / int8 when its gate passed), so the
            # version's registered metrics are the served model's own.
            predictor = recipe.load_predictor(trained.model_dir, backend="auto")
            metrics: dict[str, float] = {}
            for split in ("val", "test"):
                evaluation = recipe.evaluate(cfg, predictor, dataset.frame(split))
                metrics.update({f"{split}_{k}": float(v) for k, v in evaluation.metrics.items()})
                for file_name, figure in evaluation.figures.items():
                    run.log_figure(figure, f"plots/{split}_{file_name}")
                    _close(figure)
                for file_name, text in evaluation.texts.items():
                    run.log_text(text, f"reports/{split}_{file_name}")
            run.log_metrics(metrics)
            if register:  # the drift reference travels with the version (reference.parquet)
                from opsline.monitoring.reference import write_reference

                write_reference(recipe, predictor, dataset.frame("train"), trained.model_dir, say)
            stage("registering")
            run.log_artifacts(trained.model_dir, "model")
            model_uri = run.artifact_uri("model")
            version_tags = {
                **lineage,
                "kind": trained.kind,
                **(parity.tags() if parity is not None else {}),
            }
            version = None
            if register:
                version = registry.register(
                    model_name,
                    run.run_id,
                    model_uri,
                    tags=version_tags,
                    metrics=metrics,
                    uri=cfg.tracking.uri,
                )
                run.set_tags({"registered_model": model_name, "registered_version": version})
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if version is not None:
        say(f"Registered {model_name} version {version} (run {run.run_id}).")
    return TrainResult(
        run.run_id,
        version,
        trained.kind,
        metrics,
        model_uri,
        {k: str(v) for k, v in version_tags.items()},
    )


def _train_rank(recipe_name: str, cfg: DictConfig, recipe: Recipe) -> TrainResult:
    """A rank other than 0: train its shard of every step and nothing else. No validation
    (rank 0 did it), no MLflow run, no metrics files (Lightning callbacks write on rank 0
    only), no model files outside a scratch folder removed here, no version."""
    from opsline.training.distributed import NullRun

    dataset = _dataset(recipe_name, recipe.model_name(cfg))
    work = home() / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    out_dir = tempfile.mkdtemp(prefix=f"{recipe_name}-rank-", dir=work)
    try:
        trained = recipe.train(cfg, dataset, NullRun(), out_dir=Path(out_dir))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return TrainResult("", None, trained.kind)


def _blame_rank(ranks: Any, error: Exception) -> None:
    """When rank 0's fit fails because another rank died (a closed connection, a timed-out
    collective), raise that rank's failure as the one sentence to show instead."""
    from opsline.training.distributed import DistributedTrainingError

    failed = ranks.failure(wait=5.0) if ranks.children else None
    if failed:
        raise DistributedTrainingError(f"Training failed: {failed}.") from error


def export_onnx(
    recipe: Recipe, cfg: DictConfig, model_dir: Path, dataset: Dataset, say: Say = _quiet
) -> ParityRecord | None:
    """Run the recipe's ONNX export + parity check and write the record into ``model_dir``.

    Never fails the training run: an exporter crash becomes a failed record with its reason
    (the version then serves its native weights).
    """
    from opsline.export.parity import failed, write_parity

    try:
        record = recipe.export_onnx(cfg, model_dir, dataset)
    except Exception as error:  # any exporter/runtime failure is a reason, not a crash
        log.warning("ONNX export failed", exc_info=True)
        record = failed(f"the ONNX export failed: {type(error).__name__}: {error}")
    if record is None:
        return None
    write_parity(model_dir, record)
    say(f"ONNX parity {'passed' if record.passed else 'FAILED'}: {record.reason}")
    return record


def _close(figure: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def evaluate(
    recipe_name: str,
    model_uri: str | None = None,
    overrides: Sequence[str] = (),
    split: str = "test",
) -> dict[str, float]:
    """Task metrics of a registered (default: production) model on one split."""
    from opsline.tracking.registry import resolve_model

    cfg = load_config(recipe_name, overrides)
    recipe = get_recipe(recipe_name)
    name = recipe.model_name(cfg)
    ref = resolve_model(recipe_name, model_uri or f"models:/{name}@production", cfg.tracking.uri)
    predictor = recipe.load_predictor(ref.local_dir)
    evaluation = recipe.evaluate(cfg, predictor, _dataset(recipe_name, name).frame(split))
    for figure in evaluation.figures.values():
        _close(figure)
    return {k: float(v) for k, v in evaluation.metrics.items()}


def promote(
    recipe_name: str, version: str, force: bool = False, overrides: Sequence[str] = ()
) -> Promotion:
    """Move the production alias to ``version`` if the gate holds (or ``force``)."""
    from opsline.tracking.registry import promote as gate

    cfg = load_config(recipe_name, overrides)
    recipe = get_recipe(recipe_name)
    name = recipe.model_name(cfg)
    current_value, basis = (
        (None, None)
        if force
        else _production_on_candidate_data(recipe_name, recipe, cfg, name, str(version), overrides)
    )
    return gate(
        name,
        str(version),
        recipe.primary_metric,
        recipe.greater_is_better,
        alias=cfg.promotion.alias,
        force=force,
        uri=cfg.tracking.uri,
        current_value=current_value,
        basis=basis,
        shadow=lambda: _shadow_count(name, str(version)),
        shadow_required=int(cfg.promotion.get("shadow_min_requests") or 0),
    )


def _shadow_count(name: str, version: str) -> int:
    """Requests the candidate answered in shadow beside the served model (the log)."""
    from opsline.monitoring.prediction_log import PredictionLog

    log = PredictionLog.open()
    try:
        return log.shadow_count(name, version)
    finally:
        log.close()


def _production_on_candidate_data(
    recipe_name: str,
    recipe: Recipe,
    cfg: DictConfig,
    name: str,
    version: str,
    overrides: Sequence[str],
) -> tuple[float | None, str | None]:
    """Production's primary metric re-measured on the candidate's test split, when the two
    were trained on different data (e.g. a retrain with production feedback rows): the
    registered figures would compare two different test sets. ``(None, None)`` when they
    share the data, or the candidate's dataset is no longer the prepared one."""
    from opsline.tracking.registry import data_versions

    candidate_data, production, production_data = data_versions(
        name, version, cfg.promotion.alias, cfg.tracking.uri
    )
    if (
        production is None
        or production == version
        or not candidate_data
        or candidate_data == production_data
    ):
        return None, None
    try:
        prepared = _dataset(recipe_name, name).version
    except Exception:  # noqa: BLE001 (no prepared dataset here: use the registered figures)
        return None, None
    if prepared != candidate_data:
        return None, None
    metrics = evaluate(recipe_name, f"models:/{name}/{production}", overrides)
    value = metrics.get(recipe.primary_metric)
    if value is None:
        return None, None
    return float(value), f"re-evaluated on the candidate's test split, data {prepared[:12]}"


def run(
    recipe_name: str, overrides: Sequence[str] = (), say: Say = _quiet
) -> tuple[list[TrainResult], Promotion]:
    """The whole path: prepare → validate → train each candidate → promote the best on val.

    Candidates are ``recipe.run_models`` unless the overrides pick a ``model=``.
    """
    from opsline.training.distributed import plan

    cfg = load_config(recipe_name, overrides)
    recipe = get_recipe(recipe_name)
    world = plan(cfg.trainer)
    if world.size > 1 and world.launch == 0:  # every rank would prepare and promote
        raise UsageError(
            "Under torchrun, prepare the data first and run `opsline train`; "
            "`opsline run` launches its own ranks (trainer=ddp)."
        )
    dataset = prepare(recipe_name, overrides)
    rows = ", ".join(f"{s}={dataset.manifest['splits'][s]['rows']}" for s in dataset.splits)
    say(f"Prepared {recipe_name} data {dataset.version[:12]} ({rows}).")
    result = validate(recipe_name, overrides)
    say(result.report())
    if not result.ok:
        raise DataValidationError(
            "Training refused: the dataset failed validation.\n" + result.report()
        )
    picked = any(o.lstrip("+").startswith("model=") for o in overrides)
    candidates = [None] if picked else list(cfg.recipe.get("run_models") or [None])
    results = []
    for model in candidates:
        extra = [] if model is None else [f"model={model}"]
        results.append(train(recipe_name, [*overrides, *extra], say=say))
    # Pick among candidates on val (model selection must not peek at test); the promotion
    # gate then compares the pick with production on test.
    key = f"val_{recipe.primary_metric}"
    if any(key not in r.metrics for r in results):
        raise UsageError(f"Recipe {recipe_name!r} did not report {key}; cannot pick a model.")
    best = sorted(results, key=lambda r: r.metrics[key], reverse=recipe.greater_is_better)[0]
    if best.version is None:  # train() registers unless told not to; run() never tells it
        raise UsageError(f"The {best.kind} model of {recipe_name!r} was not registered.")
    decision = promote(recipe_name, best.version, overrides=overrides)
    say(
        f"Promotion of version {best.version} ({best.kind}): "
        f"{'promoted' if decision.promoted else 'kept the current production model'} "
        f"— {decision.reason}."
    )
    return results, decision
