"""The registry and the promotion gate, against a real (embedded) MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsline.errors import NoModelError, UsageError
from opsline.tracking import registry
from opsline.tracking.runs import client, start_run


def _version(tmp_path: Path, rmsle: float | None) -> str:
    """Log a tiny model folder in a real run and register it with the given test metric."""
    folder = tmp_path / f"model-{rmsle}"
    folder.mkdir(exist_ok=True)
    (folder / "weights.txt").write_text(f"rmsle={rmsle}")
    with start_run("demo") as run:
        run.log_artifacts(folder, "model")
        metrics = {} if rmsle is None else {"test_rmsle": rmsle}
        return registry.register(
            "demo",
            run.run_id,
            run.artifact_uri("model"),
            tags={"kind": "test", "data_version": "abc"},
            metrics=metrics,
        )


def _gate(version: str, force: bool = False) -> registry.Promotion:
    return registry.promote("demo", version, "rmsle", greater_is_better=False, force=force)


def test_first_version_is_promoted_and_resolvable(tmp_path: Path) -> None:
    v1 = _version(tmp_path, 0.12)
    decision = _gate(v1)
    assert decision.promoted and "first @production" in decision.reason
    ref = registry.resolve_model("demo")
    assert (ref.version, ref.alias, ref.data_version, ref.kind) == (v1, "production", "abc", "test")
    assert ref.metrics == {"test_rmsle": 0.12}
    assert (ref.local_dir / "weights.txt").read_text() == "rmsle=0.12"


def test_gate_refuses_worse_and_force_overrides(tmp_path: Path) -> None:
    v1, v2, v3 = _version(tmp_path, 0.12), _version(tmp_path, 0.15), _version(tmp_path, 0.12)
    assert _gate(v1).promoted
    worse = _gate(v2)
    assert not worse.promoted and "worse than v1" in worse.reason
    assert registry.resolve_model("demo").version == v1
    # The decision is recorded on the version in the registry.
    tag = client().get_model_version("demo", v2).tags["promotion.production"]
    assert "not promoted" in tag and "worse" in tag
    assert _gate(v3).promoted  # equal is "at least as good"
    forced = _gate(v2, force=True)
    assert forced.promoted and forced.reason.startswith("forced")
    assert registry.resolve_model("demo").version == v2


def test_version_without_metric_needs_force(tmp_path: Path) -> None:
    v1 = _version(tmp_path, None)
    decision = _gate(v1)
    assert not decision.promoted and "--force" in decision.reason


def test_resolve_explains_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(NoModelError, match="opsline run demo"):
        registry.resolve_model("demo")
    _version(tmp_path, 0.1)
    with pytest.raises(NoModelError, match="opsline promote demo --version N"):
        registry.resolve_model("demo")
    with pytest.raises(NoModelError, match="no version 7"):
        registry.resolve_model("demo", "models:/demo/7")
    with pytest.raises(UsageError, match="Unsupported model URI"):
        registry.resolve_model("demo", "ftp://nope")


def test_resolve_by_version_and_directory(tmp_path: Path) -> None:
    v1 = _version(tmp_path, 0.2)
    assert registry.resolve_model("demo", f"models:/demo/{v1}").metrics["test_rmsle"] == 0.2
    local = registry.resolve_model("demo", str(tmp_path / "model-0.2"))
    assert local.local_dir == (tmp_path / "model-0.2").resolve() and local.version is None


def test_gate_can_require_a_shadow_period(tmp_path: Path) -> None:
    from opsline.monitoring.prediction_log import SHADOW, LogRow, PredictionLog

    log = PredictionLog.open(f"sqlite:///{tmp_path / 'predictions.db'}")
    v1, v2 = _version(tmp_path, 0.12), _version(tmp_path, 0.10)

    def gate() -> registry.Promotion:
        return registry.promote(
            "demo",
            v2,
            "rmsle",
            greater_is_better=False,
            shadow=lambda: log.shadow_count("demo", v2),
            shadow_required=3,
        )

    # No production yet: nothing to shadow, so the requirement does not apply.
    first = registry.promote(
        "demo", v1, "rmsle", greater_is_better=False, shadow=lambda: 0, shadow_required=3
    )
    assert first.promoted
    for i in range(2):  # two requests answered by both models
        log.write(
            [
                LogRow(f"r{i}", 1.0, "demo", v1, {}, "{}"),
                LogRow(f"r{i}", 1.0, "demo", v2, {}, "{}", role=SHADOW),
            ]
        )
    short = gate()
    assert not short.promoted and "answered 2 requests in shadow" in short.reason
    assert "shadow_min_requests" in short.reason and registry.resolve_model("demo").version == v1
    log.write(
        [
            LogRow("r2", 1.0, "demo", v1, {}, "{}"),
            LogRow("r2", 1.0, "demo", v2, {}, "{}", role=SHADOW),
        ]
    )
    assert gate().promoted and registry.resolve_model("demo").version == v2
    log.close()
