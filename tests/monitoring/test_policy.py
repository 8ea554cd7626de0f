"""The retrain policy's rules, and its config files."""

from __future__ import annotations

import pytest

from opsline.errors import UsageError
from opsline.jobs.actions import FAILED, NOT_PROMOTED, RUNNING, ActionLog
from opsline.monitoring.policy import (
    LoopState,
    Policy,
    decide,
    job_finished,
    load_policy,
    observe_drift,
)

NOW = 1_800_000_000.0


def test_drift_must_persist_for_k_consecutive_checks() -> None:
    policy, state = Policy(drift_checks=3, cooldown_s=0), LoopState()
    for status in ("drift", "drift", "not_enough_data"):  # no verdict: streak kept, not grown
        observe_drift(state, status)
        assert not decide(policy, state, now=NOW).retrain
    observe_drift(state, "no_drift")  # a clean check breaks the streak
    assert state.drift_streak == 0
    for _ in range(3):
        observe_drift(state, "drift")
    decision = decide(policy, state, drift={"share": 0.5}, now=NOW)
    assert decision.retrain and decision.trigger == "drift"
    assert (
        decision.reason == "drift detected on 3 consecutive checks (share of drifted features 50%)"
    )


def test_live_error_above_its_threshold_triggers_only_with_enough_labels() -> None:
    policy = Policy(quality_metric="rmsle", quality_above=0.25, quality_min_rows=50, cooldown_s=0)
    state = LoopState()
    assert not decide(policy, state, quality={"rmsle": 0.4}, quality_rows=49, now=NOW).retrain
    assert not decide(policy, state, quality={"rmsle": 0.2}, quality_rows=80, now=NOW).retrain
    decision = decide(policy, state, quality={"rmsle": 0.4}, quality_rows=80, now=NOW)
    assert decision.retrain and decision.trigger == "quality"
    assert decision.reason == "live rmsle 0.4 is above 0.25 on 80 labelled predictions"
    scores = Policy(quality_metric="accuracy", quality_below=0.8, quality_min_rows=1, cooldown_s=0)
    assert decide(scores, state, quality={"accuracy": 0.7}, quality_rows=5, now=NOW).retrain


def test_never_a_second_retrain_while_one_runs_nor_within_the_cooldown() -> None:
    policy = Policy(drift_checks=1, cooldown_s=3600)
    state = LoopState(drift_streak=5, running_job="job-1")
    assert decide(policy, state, now=NOW).reason == "a retrain is already running (job job-1)"
    state.running_job, state.last_started = None, NOW - 600
    assert "cooling down for 50 more minute(s)" in decide(policy, state, now=NOW).reason
    assert decide(policy, state, now=NOW + 3001).retrain


def test_repeated_failures_stop_the_loop_with_the_reason() -> None:
    policy, state = Policy(drift_checks=1, cooldown_s=0, max_failures=2), LoopState()
    job_finished(policy, state, failed=True, reason="boom")
    assert state.stopped is None
    job_finished(policy, state, failed=False, reason="ok")  # a success resets the count
    job_finished(policy, state, failed=True, reason="boom")
    job_finished(policy, state, failed=True, reason="disk full")
    state.drift_streak = 9
    decision = decide(policy, state, now=NOW)
    assert not decision.retrain
    assert decision.reason.startswith(
        "the loop stopped: 2 retrains failed in a row (last: disk full)"
    )


def test_state_is_rebuilt_from_the_action_record(tmp_path) -> None:
    actions = ActionLog(tmp_path)
    for outcome in (NOT_PROMOTED, FAILED, FAILED):
        a = actions.add(
            "house_price", "house_price", "drift", "retrain", RUNNING, {}, job_id=f"j-{outcome}"
        )
        actions.finish(a.id, outcome, "x")
    running = actions.add(
        "house_price", "house_price", "quality", "retrain", RUNNING, {}, job_id="j-now"
    )
    state = LoopState.from_actions(actions.recent("house_price"))
    assert state.running_job == "j-now" and state.last_started is not None
    actions.finish(running.id, FAILED, "y")
    assert LoopState.from_actions(actions.recent("house_price")).failures == 3


def test_policies_load_by_name_with_inheritance() -> None:
    default = load_policy("default")
    house = load_policy(None, recipe="house_price")  # the recipe's own file when present
    assert default is not None and house is not None
    assert (house.name, house.quality_metric, house.quality_above) == ("house_price", "rmsle", 0.25)
    assert house.drift_checks == default.drift_checks  # inherited from default.yaml
    assert load_policy(None, recipe="translation").name == "default"
    assert load_policy("off") is None


def test_unknown_or_invalid_policies_are_one_sentence(tmp_path) -> None:
    with pytest.raises(
        UsageError, match=r"Unknown retrain policy 'nope'\. Valid policies: default, house_price"
    ):
        load_policy("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("quality: {metric: rmsle}\n")
    with pytest.raises(UsageError, match="neither `above` nor `below`"):
        load_policy(str(bad))
