"""The retrain policy: from drift checks and live quality to "retrain now" (or why not).

Pure decisions, no I/O: :func:`decide` looks at the policy (``configs/monitor/*.yaml``),
the loop's state and the latest evidence, and says whether to start a retrain and why. The
server's loop (:mod:`opsline.serving.retrain_loop`) and ``opsline monitor watch`` both
call it, so the two can never disagree. The rules, in order:

1. a loop stopped after ``max_failures`` failed retrains in a row stays stopped (the reason
   is shown) until restarted;
2. never a second retrain while one runs;
3. none within ``cooldown_minutes`` of the last one started;
4. retrain when drift was detected on ``drift.consecutive_checks`` checks in a row, or
5. when the live ``quality.metric`` is worse than its threshold on at least
   ``quality.min_rows`` labelled predictions.

Whatever the trigger, the promotion gate still decides whether the new version serves.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from opsline.jobs.actions import Action

DRIFT, QUALITY = "drift", "quality"


@dataclass
class Policy:
    """A retrain policy (see ``configs/monitor/default.yaml`` for each field's meaning)."""

    name: str = "default"
    enabled: bool = True
    drift_checks: int = 3
    quality_metric: str | None = None
    quality_above: float | None = None
    quality_below: float | None = None
    quality_min_rows: int = 50
    cooldown_s: float = 3600.0
    max_failures: int = 3
    train_overrides: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def policy_dir() -> Path:
    from opsline.config import config_dir

    return config_dir() / "monitor"


def available() -> list[str]:
    """Policy names in ``configs/monitor``."""
    return sorted(p.stem for p in policy_dir().glob("*.yaml"))


def load_policy(name: str | None, recipe: str | None = None) -> Policy | None:
    """The policy ``name`` (a name in ``configs/monitor`` or a YAML path); ``None`` = the
    file named after ``recipe`` if there is one, else ``default``; ``off`` = no policy."""
    from omegaconf import OmegaConf

    if name == "off":
        return None
    if name is None:
        name = recipe if recipe and (policy_dir() / f"{recipe}.yaml").is_file() else "default"
    raw = _load(name)
    cfg = OmegaConf.create(raw)
    try:
        quality = cfg.get("quality") or {}
        policy = Policy(
            name=Path(name).stem,
            enabled=bool(cfg.get("enabled", True)),
            drift_checks=int((cfg.get("drift") or {}).get("consecutive_checks", 3)),
            quality_metric=quality.get("metric"),
            quality_above=_float(quality.get("above")),
            quality_below=_float(quality.get("below")),
            quality_min_rows=int(quality.get("min_rows", 50)),
            cooldown_s=float(cfg.get("cooldown_minutes", 60)) * 60,
            max_failures=int(cfg.get("max_failures", 3)),
            train_overrides=[str(o) for o in cfg.get("train_overrides") or []],
        )
    except (TypeError, ValueError) as error:
        raise UsageError(f"Retrain policy {name!r} is invalid: {error}.") from None
    if policy.drift_checks < 1 or policy.max_failures < 1 or policy.cooldown_s < 0:
        raise UsageError(
            f"Retrain policy {name!r} is invalid: consecutive_checks and "
            "max_failures must be at least 1, cooldown_minutes not negative."
        )
    if policy.quality_metric and policy.quality_above is None and policy.quality_below is None:
        raise UsageError(
            f"Retrain policy {name!r} names quality metric "
            f"{policy.quality_metric!r} but neither `above` nor `below`."
        )
    return policy


def _load(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The YAML of ``name`` merged over its ``defaults:`` parent, if it names one."""
    from omegaconf import OmegaConf

    path = Path(name) if name.endswith((".yaml", ".yml")) else policy_dir() / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(
            f"Unknown retrain policy {name!r}. Valid policies: "
            f"{', '.join(available()) or '(none)'} (or a YAML file, or off)."
        )
    raw = OmegaConf.to_container(OmegaConf.load(path)) or {}
    parent = raw.pop("defaults", None)
    if parent and parent not in seen:
        base = OmegaConf.create(_load(str(parent), (*seen, name)))
        raw = OmegaConf.to_container(OmegaConf.merge(base, raw))
    return raw  # type: ignore[return-value]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class LoopState:
    """What the loop remembers between checks (rebuilt from the action log on restart)."""

    drift_streak: int = 0
    failures: int = 0
    last_started: float | None = None  # unix time of the last retrain started
    running_job: str | None = None
    stopped: str | None = None  # why the loop gave up, if it did
    last_decision: str = "no check yet"

    @classmethod
    def from_actions(cls, actions: list[Action]) -> LoopState:
        """Cooldown, running job and consecutive failures from the record (newest first)."""
        from datetime import datetime

        from opsline.jobs.actions import FAILED, RUNNING

        state = cls()
        started = [a for a in actions if a.decision == "retrain"]
        if started:
            state.last_started = datetime.fromisoformat(started[0].at).timestamp()
            if started[0].outcome == RUNNING:
                state.running_job = started[0].job_id
        for action in started:
            if action.outcome != FAILED:
                break
            state.failures += 1
        return state

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    """Whether to retrain now, what triggered it and the evidence, in words."""

    retrain: bool
    reason: str
    trigger: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def observe_drift(state: LoopState, status: str) -> None:
    """Count consecutive drift verdicts; a check without a verdict (too little data, no
    reference) neither extends nor breaks the streak."""
    if status == "drift":
        state.drift_streak += 1
    elif status == "no_drift":
        state.drift_streak = 0


def decide(
    policy: Policy,
    state: LoopState,
    *,
    drift: dict[str, Any] | None = None,
    quality: dict[str, float] | None = None,
    quality_rows: int = 0,
    now: float | None = None,
) -> Decision:
    """Apply the rules (module docstring) to the state and the latest evidence."""
    now = time.time() if now is None else now
    if not policy.enabled:
        return Decision(False, f"the retrain policy {policy.name!r} is disabled")
    if state.stopped:
        return Decision(False, f"the loop stopped: {state.stopped}")
    if state.running_job:
        return Decision(False, f"a retrain is already running (job {state.running_job})")
    if state.last_started is not None and now - state.last_started < policy.cooldown_s:
        wait = policy.cooldown_s - (now - state.last_started)
        return Decision(
            False, f"cooling down for {wait / 60:.0f} more minute(s) after the last retrain"
        )
    evidence = {"drift_streak": state.drift_streak, **({"drift": drift} if drift else {})}
    if state.drift_streak >= policy.drift_checks:
        share = (drift or {}).get("share")
        shown = f" (share of drifted features {share:.0%})" if share is not None else ""
        return Decision(
            True,
            f"drift detected on {state.drift_streak} consecutive checks{shown}",
            DRIFT,
            evidence,
        )
    metric = policy.quality_metric
    if metric and quality and metric in quality and quality_rows >= policy.quality_min_rows:
        value = quality[metric]
        evidence = {**evidence, "quality": quality, "quality_rows": quality_rows}
        if policy.quality_above is not None and value > policy.quality_above:
            return Decision(
                True,
                f"live {metric} {value:.4g} is above {policy.quality_above:g}"
                f" on {quality_rows} labelled predictions",
                QUALITY,
                evidence,
            )
        if policy.quality_below is not None and value < policy.quality_below:
            return Decision(
                True,
                f"live {metric} {value:.4g} is below {policy.quality_below:g}"
                f" on {quality_rows} labelled predictions",
                QUALITY,
                evidence,
            )
    return Decision(
        False,
        f"no trigger (drift streak {state.drift_streak} of "
        f"{policy.drift_checks}"
        + (f", live {metric} within bounds or too few labels" if metric else "")
        + ")",
    )


def job_finished(policy: Policy, state: LoopState, failed: bool, reason: str) -> None:
    """Update the state when the running retrain ends; stop after repeated failures."""
    state.running_job = None
    if not failed:
        state.failures = 0
        return
    state.failures += 1
    if state.failures >= policy.max_failures:
        state.stopped = (
            f"{state.failures} retrains failed in a row (last: {reason}); "
            "fix the cause, then restart the server or `opsline monitor watch`"
        )
