"""The clairvoyant deadline oracle's ranks and pass inputs (hermes_sdk.policy.deadline_oracle)."""

from __future__ import annotations

import math

import pytest

from hermes_sdk.policy import AppState, make_policy
from hermes_sdk.policy.deadline_gittins import HOPELESS_RANK_S
from hermes_sdk.policy.deadline_oracle import DeadlineOraclePolicy
from hermes_sdk.policy.factory import SIMULATOR_ONLY_POLICIES


def _run(size: float, latency: float | None, deadline: float | None) -> AppState:
    return AppState(
        app="a",
        run_id="r",
        arrival_s=0.0,
        deadline_s=deadline,
        true_remaining_s=size,
        true_remaining_latency_s=latency,
    )


def test_ranks_by_true_size_over_weight_and_drops_runs_that_cannot_make_it() -> None:
    oracle = DeadlineOraclePolicy(weight=4.0)
    assert oracle.rank(_run(8.0, 5.0, None), 0.0) == 8.0  # no deadline: SRPT
    assert oracle.rank(_run(8.0, 5.0, 10.0), 0.0) == 2.0  # feasible: size / weight
    assert oracle.rank(_run(8.0, 5.0, 10.0), 5.0) == 2.0  # exactly on time still counts
    assert oracle.rank(_run(8.0, 5.0, 10.0), 5.5) == HOPELESS_RANK_S + 8.0
    # a hopeless run ranks behind every run without a deadline, however large
    assert oracle.rank(_run(1.0, 1.0, 0.5), 0.0) > oracle.rank(_run(1e6, None, None), 0.0)


def test_latency_defaults_to_service_when_the_simulator_gives_none() -> None:
    oracle = DeadlineOraclePolicy()
    assert oracle.can_make_it(_run(8.0, None, 8.0), 0.0)
    assert not oracle.can_make_it(_run(8.0, None, 7.9), 0.0)
    assert oracle.can_make_it(_run(8.0, 3.0, 7.9), 0.0)


def test_queue_plan_is_true_size_and_latest_start() -> None:
    oracle = DeadlineOraclePolicy()
    assert oracle.queue_plan(_run(8.0, 5.0, 10.0), 1.0) == (8.0, 5.0)
    work, start_by = oracle.queue_plan(_run(8.0, 5.0, None), 1.0)
    assert work == 8.0 and math.isnan(start_by)
    work, start_by = oracle.queue_plan(_run(8.0, 5.0, 10.0), 6.0)
    assert work == 8.0 and math.isnan(start_by)


def test_weight_must_be_positive_and_finite() -> None:
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            DeadlineOraclePolicy(weight=bad)


def test_bench_only_name() -> None:
    assert isinstance(make_policy("deadline_oracle"), DeadlineOraclePolicy)
    assert "deadline_oracle" in SIMULATOR_ONLY_POLICIES  # `hermes serve` refuses it
