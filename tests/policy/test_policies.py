"""Every policy's rank on hand-built app states, and make_policy's contract."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from hermes_sdk import ConfigError, RunState
from hermes_sdk.policy import (
    NO_DEADLINE_RANK_S,
    POLICY_NAMES,
    AppState,
    DemandModel,
    GittinsPolicy,
    LSTFPolicy,
    Policy,
    gittins_index,
    make_policy,
)


class TableModel:
    """Remaining demand looked up by app name (conditioned on node for state-aware tests)."""

    def __init__(self, table: dict[str, NDArray[np.float64]]) -> None:
        self.table = table
        self.calls: list[tuple[str, RunState]] = []

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        self.calls.append((app, state))
        key = app if state.node == "START" else f"{app}@{state.node}"
        return self.table.get(key, self.table[app])


TWO_POINT = np.array([1.0] * 9 + [20.0])
MODEL = TableModel(
    {
        "short": np.full(100, 2.0),
        "long": np.full(100, 50.0),
        "mixed": TWO_POINT,
        "mixed@late": np.full(10, 19.0),
    }
)


def state(app: str, **kw: object) -> AppState:
    return AppState(app=app, run_id=f"r-{app}", arrival_s=0.0, **kw)  # type: ignore[arg-type]


def test_model_protocol() -> None:
    assert isinstance(MODEL, DemandModel)
    for name in POLICY_NAMES:
        assert isinstance(make_policy(name, MODEL), Policy)


def test_gittins_ranks_by_inverse_index_of_remaining_demand() -> None:
    policy = GittinsPolicy(MODEL, n=10)
    assert policy.rank(state("short"), 0.0) == pytest.approx(2.0)
    assert policy.rank(state("mixed"), 0.0) == pytest.approx(1 / 0.9)
    late = state("mixed", state=RunState(node="late", visits=(("late", 1),)))
    assert policy.rank(late, 0.0) == pytest.approx(19.0)
    assert MODEL.calls[-1][1].node == "late"


def test_gittins_blind_conditions_total_size_on_attained() -> None:
    policy = make_policy("gittins_blind", MODEL)
    late = state("mixed", attained_s=1.0, state=RunState(node="late", visits=(("late", 1),)))
    assert policy.rank(late, 0.0) == pytest.approx(19.0)
    assert policy.rank(state("mixed"), 0.0) == pytest.approx(1 / gittins_index(TWO_POINT))


def test_simple_baselines() -> None:
    a = AppState("short", "r1", arrival_s=5.0, attained_s=3.0, request_arrival_s=9.0)
    assert make_policy("fcfs").rank(a, 10.0) == 9.0
    assert make_policy("fcfs").rank(AppState("x", "r", arrival_s=4.0), 10.0) == 4.0
    assert make_policy("app_fcfs").rank(a, 10.0) == 5.0
    assert make_policy("las").rank(a, 10.0) == 3.0
    assert make_policy("sjf_mean", MODEL).rank(state("mixed"), 0.0) == pytest.approx(2.9)
    assert make_policy("srpt_oracle").rank(state("x", true_remaining_s=7.0), 0.0) == 7.0
    assert make_policy("srpt_oracle").rank(state("x"), 0.0) == float("inf")


def test_lstf_slack_and_classes() -> None:
    policy = LSTFPolicy(MODEL, q=0.95)
    tight = state("long", deadline_s=60.0)  # slack at t=0: 60 - 50 = 10
    loose = state("short", deadline_s=100.0)  # slack 98
    none = state("short")
    assert policy.rank(tight, 0.0) == pytest.approx(10.0)
    assert policy.rank(loose, 0.0) == pytest.approx(98.0)
    assert policy.rank(none, 0.0) == pytest.approx(NO_DEADLINE_RANK_S + 2.0)
    ordered = sorted([none, loose, tight], key=lambda s: policy.rank(s, 0.0))
    assert [s.app for s in ordered] == ["long", "short", "short"]
    # slack falls with time; the order key does not
    assert policy.rank(tight, 4.0) == pytest.approx(6.0)
    assert policy.order_key(tight, 4.0) == policy.order_key(tight, 0.0)


def test_lstf_demotes_infeasible_only_when_asked() -> None:
    hopeless = state("long", deadline_s=30.0)  # needs 50 s, has 30
    none = state("short")
    keep = LSTFPolicy(MODEL)
    demote = LSTFPolicy(MODEL, demote_infeasible=True)
    assert keep.rank(hopeless, 0.0) < keep.rank(none, 0.0)
    assert demote.rank(hopeless, 0.0) > demote.rank(none, 0.0)
    assert demote.rank(hopeless, 0.0) == pytest.approx(NO_DEADLINE_RANK_S + 50.0)


def test_edf() -> None:
    policy = make_policy("edf")
    early = state("a", deadline_s=10.0)
    late = state("b", deadline_s=20.0)
    assert policy.rank(early, 0.0) < policy.rank(late, 0.0) < policy.rank(state("c"), 0.0)


def test_make_policy_errors() -> None:
    with pytest.raises(ConfigError, match="unknown policy 'nope'"):
        make_policy("nope")
    with pytest.raises(ConfigError, match="needs a demand model"):
        make_policy("gittins")
    assert make_policy("ps").name == "ps"
    assert getattr(make_policy("ps"), "processor_sharing", False)
