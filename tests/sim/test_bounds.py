"""The worst-slowdown lower bound: valid for every policy, exact where EDF theory says it is."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from hermes_sdk.sim import simulate
from hermes_sdk.sim.bounds import _feasible, max_slowdown_lower_bound
from hermes_sdk.sim.workloads import SUITES
from tests.sim.test_theory import single_server

LAW = {"dist": "lognormal", "mean": 1.0, "cv": 1.5}


def naive_feasible(
    arrival: np.ndarray, standalone: np.ndarray, work: np.ndarray, capacity: float, s: float
) -> bool:
    """Every window [a_j, d_k], summed app by app."""
    deadline = arrival + s * standalone
    for t1 in arrival:
        for t2 in deadline:
            inside = (arrival >= t1) & (deadline <= t2)
            if work[inside].sum() > capacity * max(t2 - t1, 0.0) + 1e-9:
                return False
    return True


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_condition_matches_the_window_by_window_sum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0, 40))
    standalone = rng.lognormal(0.0, 1.0, 40)
    work = standalone * rng.uniform(1.0, 3.0, 40)
    for s in (1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0):
        assert _feasible(arrival, standalone, work, 2.0, s) == naive_feasible(
            arrival, standalone, work, 2.0, s
        ), s


def test_bound_is_exact_for_one_preemptive_server() -> None:
    """One call per app on one preemptive server: EDF on the deadlines a + S * size meets them
    all when the demand-bound condition holds, so EDF at the bound reaches it."""
    wl = single_server(LAW, 0.9, 400, seed=5)
    bound = max_slowdown_lower_bound(wl, tol=1e-4)
    assert bound.backend == "cpu" and bound.value > 2.0
    timed = copy.deepcopy(wl)
    timed["apps"][0]["deadline"] = {"fraction": 1.0, "factors": [bound.value]}
    edf = simulate(timed, "edf")
    assert edf.slowdowns.max() <= bound.value * (1 + 1e-6)
    assert edf.slowdowns.max() >= bound.value * (1 - 2e-4)
    for policy in ("fcfs", "ps", "srpt_oracle", "las"):
        assert simulate(wl, policy).slowdowns.max() >= bound.value * (1 - 2e-4), policy


@pytest.mark.parametrize("suite", ["light", "paper"])
def test_no_policy_beats_the_bound_on_multi_stage_apps(suite: str) -> None:
    wl: dict[str, Any] = SUITES[suite](
        load=0.95, seed=3, n_apps=240, warmup_apps=40, learning="oracle"
    )
    bound = max_slowdown_lower_bound(wl)
    assert bound.value > 1.0
    for policy in ("fcfs", "ps", "srpt_oracle", "gittins", "gittins_aging", "las"):
        worst = simulate(wl, policy).slowdowns.max()
        assert worst >= bound.value * (1 - 1e-3), (policy, worst, bound)


def test_light_traffic_bound_is_one() -> None:
    """Apps that never overlap can all run alone: the bound is the trivial 1."""
    bound = max_slowdown_lower_bound(single_server(LAW, 0.001, 50, seed=2))
    assert bound.value == 1.0 and bound.backend == ""


def test_batching_backend_counts_its_peak_throughput() -> None:
    """A backend whose per-call speed falls with batching still delivers k * speed(k) at best;
    a larger peak throughput can only lower the bound."""
    wl = single_server(LAW, 0.9, 300, seed=7)
    slow = max_slowdown_lower_bound(wl)
    batched = copy.deepcopy(wl)
    batched["backends"]["cpu"] = {"servers": 2, "preemptive": True, "speed": [1.0, 0.75]}
    assert max_slowdown_lower_bound(batched).value <= slow.value
