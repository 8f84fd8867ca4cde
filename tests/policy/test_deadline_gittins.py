"""Deadline Gittins: closed forms, both indices by definition, monotonicity, hopeless runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import Call, RunPath, RunState, Stage
from hermes_sdk.policy import AppState, GittinsPolicy, make_policy
from hermes_sdk.policy.deadline_gittins import (
    DEFAULT_QUEUE_Q,
    DEFAULT_SLACK_Q,
    DEFAULT_WEIGHT,
    HOPELESS_RANK_S,
    DeadlineGittinsPolicy,
    deadline_index_and_quantum,
    feasible_share,
    hit_index_and_quantum,
    slack_at_quantile,
)
from hermes_sdk.policy.gittins import gittins_index

TWO_POINT = np.array([1.0] * 90 + [20.0] * 10)
PAIR = np.array([2.0] * 50 + [3.0] * 50)
"""R = 2 s or 3 s, equally likely: plain Gittins serves to 3 s (1 / 2.5 beats 0.5 / 2)."""


def brute_force_deadline_index(demand: np.ndarray, latency: np.ndarray, slack: float) -> float:
    """By definition, over every service quantum D (a fine grid, not just the samples): the best
    P(R <= D | feasible) / E[min(R, D) | feasible], feasible = the P(L <= slack) share of the
    smallest sizes (0 when no world is feasible)."""
    p = float(np.mean(latency <= slack))
    f = math.ceil(p * demand.size - 1e-9)
    if f == 0:
        return 0.0
    worlds = np.sort(demand)[:f]
    grid = np.unique(np.concatenate([worlds, np.linspace(0.0, worlds[-1], 400)[1:]]))
    return max(float(np.mean(worlds <= d) / np.mean(np.minimum(worlds, d))) for d in grid)


def test_two_point_closed_form() -> None:
    """R = 1 (90%) or 20 (10%), latency = service. Far deadline: plain Gittins max(0.9, 1/2.9)
    = 0.9; slack in [1, 20): only the small world is feasible, index 1/1; slack < 1: hopeless."""
    for slack, expected in [(25.0, 0.9), (20.0, 0.9), (19.0, 1.0), (1.0, 1.0)]:
        hit = deadline_index_and_quantum(TWO_POINT, feasible_share(TWO_POINT, slack))
        assert hit is not None
        assert hit[0] == pytest.approx(expected)
        assert hit[1] == pytest.approx(1.0)  # serve 1 s, then it is done or re-ranked
    assert deadline_index_and_quantum(TWO_POINT, feasible_share(TWO_POINT, 0.99)) is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.05, 50.0), min_size=1, max_size=30),
    st.floats(0.0, 60.0),
)
def test_matches_the_definition_over_every_quantum(sizes: list[float], slack: float) -> None:
    demand = np.array(sizes)
    latency = demand * 0.5  # comonotone, as the index assumes
    expected = brute_force_deadline_index(demand, latency, slack)
    hit = deadline_index_and_quantum(demand, feasible_share(latency, slack), p_min=0.0)
    if expected == 0.0:
        assert hit is None
    else:
        assert hit is not None
        assert hit[0] == pytest.approx(expected, rel=1e-9)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.05, 50.0), min_size=1, max_size=40),
    st.lists(st.floats(0.05, 50.0), min_size=1, max_size=40),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_earlier_deadline_never_lowers_the_index(
    demand: list[float], latency: list[float], a: float, b: float
) -> None:
    """Any samples (not only comonotone ones): a smaller feasible share never lowers the index
    while the run stays feasible."""
    lo, hi = sorted((a, b))
    later = deadline_index_and_quantum(demand, hi, p_min=0.0)
    earlier = deadline_index_and_quantum(demand, lo, p_min=0.0)
    if earlier is not None:
        assert later is not None
        assert earlier[0] >= later[0] * (1 - 1e-12)
    shares = [feasible_share(latency, s) for s in (1.0, 5.0, 20.0)]
    assert shares == sorted(shares)  # more slack, more feasible worlds


def test_far_deadline_is_plain_gittins() -> None:
    hit = deadline_index_and_quantum(TWO_POINT, 1.0)
    assert hit is not None and hit[0] == pytest.approx(gittins_index(TWO_POINT))


def brute_force_hit_index(demand: np.ndarray, latency: np.ndarray, slack: float) -> float:
    """By definition, over every service quantum D (a fine grid, not just the samples): the best
    P(R <= D and the world is feasible) / E[min(R, D)] over *all* worlds (feasible = the
    P(L <= slack) share of the smallest sizes; 0 when no world is feasible)."""
    p = float(np.mean(latency <= slack))
    f = math.ceil(p * demand.size - 1e-9)
    if f == 0:
        return 0.0
    sizes = np.sort(demand)
    feasible = np.zeros(sizes.size, dtype=bool)
    feasible[:f] = True
    grid = np.unique(np.concatenate([sizes[:f], np.linspace(0.0, sizes[f - 1], 400)[1:]]))
    return max(
        float(np.mean(feasible & (sizes <= d)) / np.mean(np.minimum(sizes, d))) for d in grid
    )


def test_pair_closed_form_separates_the_two_indices() -> None:
    """R = 2 or 3 s (50/50), latency = service. Plain Gittins: max(0.5 / 2, 1 / 2.5) = 0.4 at
    quantum 3. With 2 <= slack < 3 only the 2 s world can hit: the hit index serves to 2 s for a
    0.5 chance at 2 s of service, 0.25 (lower: the run may miss); the conditional index is the
    Gittins index of the 2 s world alone, 1 / 2 = 0.5 (higher: the run is urgent)."""
    assert gittins_index(PAIR) == pytest.approx(0.4)
    for slack in (3.0, 10.0):
        for fn in (hit_index_and_quantum, deadline_index_and_quantum):
            hit = fn(PAIR, feasible_share(PAIR, slack))
            assert hit is not None and hit == pytest.approx((0.4, 3.0))
    for slack in (2.0, 2.9):
        share = feasible_share(PAIR, slack)
        assert hit_index_and_quantum(PAIR, share) == pytest.approx((0.25, 2.0))
        assert deadline_index_and_quantum(PAIR, share) == pytest.approx((0.5, 2.0))
    assert hit_index_and_quantum(PAIR, feasible_share(PAIR, 1.99)) is None


def test_hit_index_two_point_closed_form() -> None:
    """TWO_POINT with 1 <= slack < 20: the plain index's quantum (1 s) fits, so the hit index is
    the plain 0.9 (serve 1 s, finish w.p. 0.9); below 1 s hopeless."""
    for slack in (25.0, 19.0, 1.0):
        hit = hit_index_and_quantum(TWO_POINT, feasible_share(TWO_POINT, slack))
        assert hit is not None and hit == pytest.approx((0.9, 1.0))
    assert hit_index_and_quantum(TWO_POINT, feasible_share(TWO_POINT, 0.99)) is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.05, 50.0), min_size=1, max_size=30),
    st.floats(0.0, 60.0),
)
def test_hit_index_matches_the_definition_over_every_quantum(
    sizes: list[float], slack: float
) -> None:
    demand = np.array(sizes)
    latency = demand * 0.5  # comonotone, as the index assumes
    expected = brute_force_hit_index(demand, latency, slack)
    hit = hit_index_and_quantum(demand, feasible_share(latency, slack), p_min=0.0)
    if expected == 0.0:
        assert hit is None
    else:
        assert hit is not None
        assert hit[0] == pytest.approx(expected, rel=1e-9)
        # serving the quantum can only finish the run in a feasible world
        assert hit[1] <= np.sort(demand)[math.ceil(np.mean(latency <= slack) * demand.size) - 1]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.05, 50.0), min_size=1, max_size=40),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_hit_index_never_above_plain_and_never_raised_by_an_earlier_deadline(
    demand: list[float], a: float, b: float
) -> None:
    """Fewer feasible worlds leave fewer quanta that can earn the reward, at the same cost."""
    lo, hi = sorted((a, b))
    plain = gittins_index(demand)
    later = hit_index_and_quantum(demand, hi, p_min=0.0)
    earlier = hit_index_and_quantum(demand, lo, p_min=0.0)
    if later is not None:
        assert later[0] <= plain * (1 + 1e-12)
    if earlier is not None:
        assert later is not None
        assert earlier[0] <= later[0] * (1 + 1e-12)
    full = hit_index_and_quantum(demand, 1.0)
    assert full is not None and full[0] == pytest.approx(plain)


def test_argument_checks() -> None:
    with pytest.raises(ValueError):
        deadline_index_and_quantum(TWO_POINT, 1.5)
    with pytest.raises(ValueError):
        deadline_index_and_quantum(TWO_POINT, 0.5, p_min=-0.1)
    with pytest.raises(ValueError):
        deadline_index_and_quantum([], 0.5)
    for bad in ([], [1.0, math.nan]):
        with pytest.raises(ValueError):
            hit_index_and_quantum(bad, 0.5)
    with pytest.raises(ValueError):
        hit_index_and_quantum(TWO_POINT, -0.1)
    with pytest.raises(ValueError):
        feasible_share(TWO_POINT, math.nan)
    assert feasible_share([], 0.0) == 1.0 and feasible_share([], -1.0) == 0.0


# --- the policy on a learned PDGraph ---------------------------------------------------------


def _registry() -> GraphRegistry:
    """``job``: one LLM call of 1 s (90% of runs) or 20 s (10%); ``wide``: 8 parallel 2 s calls
    (16 s of service, 2 s of latency); ``pair``: one call of 2 s or 3 s (50/50)."""
    reg = GraphRegistry()
    for i in range(100):
        size = 20.0 if i % 10 == 0 else 1.0
        stage = Stage("llm", (Call(size),), latency_s=size)
        reg.observe(RunPath(app="job", run_id=f"j{i}", stages=(stage,), started_at=float(i)))
        wide = Stage("map", tuple(Call(2.0) for _ in range(8)), latency_s=2.0)
        reg.observe(RunPath(app="wide", run_id=f"w{i}", stages=(wide,), started_at=float(i)))
        pair = 2.0 if i % 2 else 3.0
        stage = Stage("llm", (Call(pair),), latency_s=pair)
        reg.observe(RunPath(app="pair", run_id=f"p{i}", stages=(stage,), started_at=float(i)))
    return reg


REG = _registry()


def _run(app: str, deadline_s: float | None, run_id: str = "r") -> AppState:
    return AppState(app=app, run_id=run_id, arrival_s=0.0, state=RunState(), deadline_s=deadline_s)


def test_policy_without_deadline_is_plain_gittins() -> None:
    policy = DeadlineGittinsPolicy(REG, n=400)
    plain = GittinsPolicy(REG, n=400)
    assert policy.rank(_run("job", None), 0.0) == plain.rank(_run("job", None), 0.0)
    assert make_policy("gittins", REG).name == "gittins"
    assert make_policy("gittins_plain", REG).name == "gittins_plain"
    default = make_policy("gittins", REG)
    assert isinstance(default, DeadlineGittinsPolicy) and default.index == "hit"
    conditional = make_policy("gittins_conditional", REG)
    assert isinstance(conditional, DeadlineGittinsPolicy) and conditional.index == "conditional"
    assert conditional.name == "gittins_conditional"


def test_far_deadline_ranks_like_plain_gittins_scaled_by_the_weight() -> None:
    policy = DeadlineGittinsPolicy(REG, n=400, weight=2.0)
    plain = GittinsPolicy(REG, n=400).rank(_run("job", None), 0.0)
    assert policy.rank(_run("job", 1e6), 0.0) == pytest.approx(plain / 2.0)


@pytest.mark.parametrize("app_name", ["job", "pair"])
def test_conditional_rule_earlier_deadline_never_lowers_priority_while_feasible(
    app_name: str,
) -> None:
    """The issue's monotonicity, which the conditional index has (urgency raises priority)."""
    policy = DeadlineGittinsPolicy(REG, n=400, weight=1.0, index="conditional")
    ranks = []
    for deadline in np.linspace(40.0, 0.0, 81):
        app = _run(app_name, float(deadline))
        if policy.feasible(app, 0.0) < policy.p_min:
            break
        ranks.append(policy.rank(app, 0.0))
    assert len(ranks) > 10
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(ranks))
    # the same run seen later (less slack) ranks no worse either
    later = [policy.rank(_run(app_name, 10.0), now) for now in (0.0, 4.0, 7.5)]
    assert later == sorted(later, reverse=True)


def test_hit_rule_at_risk_runs_yield_and_sure_ones_rank_as_plain_gittins() -> None:
    """The default (hit) index: while the run is sure to make it (every world feasible) its rank
    is the plain Gittins rank over the weight, whatever the deadline; once the deadline cuts into
    its quantum it ranks *later* (its service buys a hit only in some worlds), and an earlier
    deadline never raises its priority. ``pair`` (weight w): slack >= 3 s -> 1 / (w x 0.4); 2 to
    3 s -> 1 / (w x ~0.25) (the learned samples spread around 2 and 3 s); below 2 s hopeless.
    The index alone (no slack cap, ``slack_q=None``; the cap is tested below)."""
    policy = DeadlineGittinsPolicy(REG, n=400, slack_q=None)
    plain = GittinsPolicy(REG, n=400).rank(_run("pair", None), 0.0)
    assert plain == pytest.approx(1 / 0.4, rel=0.02)
    ranks = [policy.rank(_run("pair", float(d)), 0.0) for d in np.linspace(40.0, 0.0, 81)]
    assert all(b >= a * (1 - 1e-12) for a, b in itertools.pairwise(ranks))
    assert policy.weight == DEFAULT_WEIGHT
    assert policy.rank(_run("pair", 3.5), 0.0) == pytest.approx(plain / DEFAULT_WEIGHT)
    assert policy.rank(_run("pair", 5.0), 0.0) == pytest.approx(plain / DEFAULT_WEIGHT)
    risky = _run("pair", 2.5)
    share = policy.feasible(risky, 0.0)
    assert 0.3 < share < 0.7  # the learned 2 s world
    expected = hit_index_and_quantum(policy._demand(risky), share)
    assert expected is not None and expected[0] == pytest.approx(0.25, rel=0.15)
    assert policy.rank(risky, 0.0) == pytest.approx(1 / (DEFAULT_WEIGHT * expected[0]))
    assert policy.rank(risky, 0.0) > 1.3 * policy.rank(_run("pair", 3.5), 0.0)
    assert policy.rank(_run("pair", 1.5), 0.0) >= HOPELESS_RANK_S
    conditional = DeadlineGittinsPolicy(REG, n=400, index="conditional")
    assert conditional.rank(_run("pair", 2.5), 0.0) < policy.rank(_run("pair", 3.5), 0.0)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(0.0, 50.0), min_size=1, max_size=40),
    st.floats(-5.0, 60.0),
    st.floats(0.01, 1.0),
)
def test_slack_at_quantile_is_the_order_statistic(
    latency: list[float], slack: float, q: float
) -> None:
    """``slack - L_(ceil(q m))``, so it is >= 0 exactly when the feasible share reaches q."""
    lat = np.array(latency)
    k = math.ceil(q * lat.size - 1e-9)
    left = slack_at_quantile(lat, slack, q)
    assert left == pytest.approx(slack - np.sort(lat)[k - 1])
    assert (left >= 0.0) == (feasible_share(lat, slack) * lat.size >= k)


def test_slack_cap_closed_form_on_pair() -> None:
    """``pair`` (2 s or 3 s, latency = service), weight w, q = 0.9: with slack s >= 3 every world
    is feasible and ``L_0.9 = 3``, so the rank is ``min(1 / (w x 0.4), s - 3)``: a run that can
    wait only 0.5 s ranks 0.5 (ahead of a run whose index rank is 0.6); far from its deadline,
    the index rank. With 2 <= s < 3 only the 2 s world fits (p ~ 0.5 < q): no cap, the hit index
    (the run at risk yields); below 2 s hopeless."""
    policy = DeadlineGittinsPolicy(REG, n=400)
    assert policy.slack_q == DEFAULT_SLACK_Q == 0.9
    uncapped = DeadlineGittinsPolicy(REG, n=400, slack_q=None)
    index_rank = uncapped.rank(_run("pair", 40.0), 0.0)
    assert index_rank == pytest.approx(1 / (DEFAULT_WEIGHT * 0.4), rel=0.02)
    for slack in (3.0, 3.2, 3.5, 3.8):
        assert policy.rank(_run("pair", slack), 0.0) == pytest.approx(slack - 3.0, abs=1e-9)
    for slack in (3.9, 5.0, 40.0):
        assert policy.rank(_run("pair", slack), 0.0) == pytest.approx(index_rank)
    # the same run seen later: the cap falls one for one with the clock
    assert policy.rank(_run("pair", 10.0), 6.5) == pytest.approx(0.5, abs=1e-9)
    for slack in (2.0, 2.5, 2.99):
        risky = _run("pair", slack)
        assert policy.feasible(risky, 0.0) < DEFAULT_SLACK_Q
        assert policy.rank(risky, 0.0) == pytest.approx(uncapped.rank(risky, 0.0))
        assert policy.rank(risky, 0.0) > index_rank
    assert policy.rank(_run("pair", 1.9), 0.0) >= HOPELESS_RANK_S
    # the conditional ablation keeps no cap by default (it would break its monotonicity)
    assert DeadlineGittinsPolicy(REG, index="conditional").slack_q is None


def test_slack_cap_is_the_min_of_the_index_rank_and_the_slack() -> None:
    """For every deadline: feasible in >= q of the worlds -> min(index rank, slack - L_q);
    otherwise the index rank; the cap never lifts a hopeless run or touches runs without one."""
    for q in (0.5, 0.9, 1.0):
        policy = DeadlineGittinsPolicy(REG, n=400, slack_q=q)
        uncapped = DeadlineGittinsPolicy(REG, n=400, slack_q=None)
        for app_name in ("job", "pair", "wide"):
            lat = REG.remaining_latency(app_name, RunState(), n=400)
            for deadline in np.linspace(25.0, 0.0, 51):
                run = _run(app_name, float(deadline))
                rank, base = policy.rank(run, 0.0), uncapped.rank(run, 0.0)
                share = feasible_share(lat, float(deadline))
                if share >= q:
                    left = slack_at_quantile(lat, float(deadline), q)
                    assert left >= 0.0
                    assert rank == pytest.approx(min(base, left))
                else:
                    assert rank == base
            assert policy.rank(_run(app_name, None), 0.0) == uncapped.rank(
                _run(app_name, None), 0.0
            )


def test_hopeless_runs_drop_behind_feasible_ones_and_runs_without_deadlines() -> None:
    policy = DeadlineGittinsPolicy(REG, n=400)
    hopeless = policy.rank(_run("job", 0.5), 0.0)  # 1 s is the smallest size: cannot make it
    feasible = policy.rank(_run("job", 30.0), 0.0)
    urgent = policy.rank(_run("job", 1.5), 0.0)
    free = policy.rank(_run("job", None), 0.0)
    assert hopeless >= HOPELESS_RANK_S
    assert max(feasible, urgent, free) < hopeless
    assert urgent <= feasible
    # among hopeless runs the plain Gittins order remains (they still finish, last)
    assert policy.rank(_run("wide", 0.5), 0.0) - HOPELESS_RANK_S == pytest.approx(
        GittinsPolicy(REG, n=400).rank(_run("wide", None), 0.0)
    )


def test_feasibility_uses_latency_not_service() -> None:
    """A wide fan-out has 16 s of service but 2 s of latency: a 3 s deadline is feasible."""
    policy = DeadlineGittinsPolicy(REG, n=400)
    assert policy.feasible(_run("wide", 3.0), 0.0) == 1.0
    assert policy.rank(_run("wide", 3.0), 0.0) < HOPELESS_RANK_S


def test_policy_argument_checks() -> None:
    with pytest.raises(ValueError):
        DeadlineGittinsPolicy(REG, n=0)
    with pytest.raises(ValueError):
        DeadlineGittinsPolicy(REG, p_min=2.0)
    with pytest.raises(ValueError):
        DeadlineGittinsPolicy(REG, weight=0.0)
    with pytest.raises(ValueError):
        DeadlineGittinsPolicy(REG, index="nope")  # type: ignore[arg-type]
    for q in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError):
            DeadlineGittinsPolicy(REG, slack_q=q)
        with pytest.raises(ValueError):
            slack_at_quantile([1.0], 1.0, q)
    assert slack_at_quantile([], 2.5, 0.9) == 2.5


def test_queue_plan_closed_form_on_pair() -> None:
    """``pair`` (2 s or 3 s, latency = service): the pass's inputs are the mean remaining service
    (2.5 s) and the latest start ``deadline - L_q``. With q = 0.15 a run due at 2.5 s fits only
    in the 2 s world (p ~ 0.5 >= q), so it may start by 0.5 s (``L_0.15 = 2``); with q = 0.9 it
    is not a candidate (NaN); due at 1.9 s it is hopeless; without a deadline only the work."""
    policy = make_policy("gittins_queue", REG, n=400)
    assert isinstance(policy, DeadlineGittinsPolicy) and policy.queue_pass
    assert policy.name == "gittins_queue"
    assert policy.queue_q == DEFAULT_QUEUE_Q == 0.15
    work, start_by = policy.queue_plan(_run("pair", 2.5), 0.0)
    assert work == pytest.approx(2.5, abs=0.05)
    assert start_by == pytest.approx(0.5)
    assert policy.queue_plan(_run("pair", 12.5), 10.0)[1] == pytest.approx(10.5)  # clock-free
    strict = DeadlineGittinsPolicy(REG, n=400, queue_q=0.9)
    assert math.isnan(strict.queue_plan(_run("pair", 2.5), 0.0)[1])
    assert strict.queue_plan(_run("pair", 4.0), 0.0)[1] == pytest.approx(1.0)  # L_0.9 = 3
    assert math.isnan(policy.queue_plan(_run("pair", 1.9), 0.0)[1])
    no_deadline = policy.queue_plan(_run("pair", None), 0.0)
    assert no_deadline[0] == pytest.approx(2.5, abs=0.05) and math.isnan(no_deadline[1])
    assert not make_policy("gittins", REG).queue_pass  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="queue_q"):
        DeadlineGittinsPolicy(REG, queue_q=0.0)
