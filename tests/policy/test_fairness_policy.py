"""Tenant counters (VTC), the fair-share wrapper and the aging starvation guard, as units."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import RunState
from hermes_sdk.policy import AppState, GittinsPolicy, LASPolicy, LSTFPolicy, make_policy
from hermes_sdk.policy.aging import AgingPolicy, with_aging
from hermes_sdk.policy.fairness import (
    FairSharePolicy,
    TenantShares,
    fairness_enabled,
    parse_fairness_table,
    tenant_shares_of,
    with_fairness,
)


class Fixed:
    """Demand model: every app has remaining demand 1..10 s, uniform."""

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        return np.linspace(1.0, 10.0, n)


def test_pick_serves_the_smallest_weighted_counter() -> None:
    shares = TenantShares({"a": 2.0})
    shares.enter("gpu", "a")
    shares.enter("gpu", "b")
    shares.charge("gpu", "a", 3.0)  # counter 1.5
    shares.charge("gpu", "b", 2.0)  # counter 2.0
    assert shares.pick("gpu", ["a", "b"]) == "a"
    shares.charge("gpu", "a", 2.0)  # 2.5
    assert shares.pick("gpu", ["a", "b"]) == "b"
    assert shares.service_s("gpu") == {"a": 5.0, "b": 2.0}
    assert shares.shares("gpu") == pytest.approx({"a": 5 / 7, "b": 2 / 7})
    assert shares.counter("cpu", "a") == 0.0  # resources are independent


def test_a_refund_takes_back_a_charge() -> None:
    shares = TenantShares({"a": 2.0})
    shares.charge("gpu", "a", 3.0)  # counter 1.5
    shares.charge("gpu", "a", 1.0)  # 2.0
    shares.refund("gpu", "a", 1.0)  # that second request was refused: back to 1.5
    assert shares.counter("gpu", "a") == 1.5 and shares.service_s("gpu") == {"a": 3.0}
    shares.refund("gpu", "b", 1.0)  # never charged: nothing to take back
    shares.refund("cpu", "a", 1.0)
    assert shares.service_s("gpu") == {"a": 3.0} and shares.counter("cpu", "a") == 0.0


def test_idle_time_is_not_banked() -> None:
    shares = TenantShares()
    shares.enter("gpu", "busy")
    shares.charge("gpu", "busy", 100.0)
    shares.enter("gpu", "late")  # newly backlogged: lifted to the active minimum
    assert shares.counter("gpu", "late") == 100.0
    shares.leave("gpu", "late")
    shares.leave("gpu", "busy")
    shares.charge("gpu", "busy", 0.0)
    shares.enter("gpu", "late")  # nobody active: lifted to the largest counter
    assert shares.counter("gpu", "late") == 100.0


def test_a_backlogged_tenant_keeps_its_counter() -> None:
    shares = TenantShares()
    shares.enter("gpu", "a")
    shares.enter("gpu", "a")
    shares.enter("gpu", "b")
    shares.charge("gpu", "b", 10.0)
    shares.leave("gpu", "a")  # still one pending: not re-lifted on the next enter
    shares.enter("gpu", "a")
    assert shares.counter("gpu", "a") == 0.0
    assert shares.pick("gpu", ["a", "b"]) == "a"


@given(st.lists(st.tuples(st.sampled_from("ab"), st.floats(0.01, 5.0)), min_size=1, max_size=200))
def test_always_serving_the_pick_keeps_counters_within_one_request(
    requests: list[tuple[str, float]],
) -> None:
    """Both tenants backlogged, each served request charged to the picked tenant: the weighted
    counters never drift apart by more than the largest request (VTC's fairness bound)."""
    shares = TenantShares({"a": 1.0, "b": 3.0})
    shares.enter("r", "a")
    shares.enter("r", "b")
    biggest = 0.0
    for _, size in requests:
        tenant = shares.pick("r", ["a", "b"])
        shares.charge("r", tenant, size)
        biggest = max(biggest, size / shares.weight(tenant))
        gap = abs(shares.counter("r", "a") - shares.counter("r", "b"))
        assert gap <= biggest + 1e-9


def test_weights_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        TenantShares({"a": 0.0})
    with pytest.raises(ConfigError):
        TenantShares({"a": math.inf})


def test_wrapper_keeps_the_inner_ranks_and_optional_methods() -> None:
    model = Fixed()
    app = AppState(app="x", run_id="r", arrival_s=0.0, attained_s=2.0, tenant="t")
    gittins = GittinsPolicy(model)
    fair = with_fairness(gittins, {"t": 2.0})
    assert fair.name == "gittins+fair"
    assert fair.rank(app, 1.0) == gittins.rank(app, 1.0)
    assert hasattr(fair, "rank_and_quantum") and not hasattr(fair, "order_key")
    assert tenant_shares_of(fair) is fair.shares and fair.shares.weight("t") == 2.0
    las = with_fairness(LASPolicy())
    assert not hasattr(las, "rank_and_quantum") and las.rank(app, 0.0) == 2.0
    lstf = with_fairness(LSTFPolicy(model))
    assert lstf.time_varying and hasattr(lstf, "order_key")
    assert with_fairness(fair) is fair
    assert tenant_shares_of(gittins) is None
    assert isinstance(fair, FairSharePolicy)


def test_fairness_is_on_with_more_than_one_tenant_unless_told() -> None:
    assert not fairness_enabled(None, ["a", "a"])
    assert fairness_enabled(None, ["a", "b"])
    assert not fairness_enabled(False, ["a", "b"])
    assert fairness_enabled(True, ["a"])


def test_aging_order_key_orders_like_the_rank_at_any_time() -> None:
    model = Fixed()
    unbounded = AgingPolicy(GittinsPolicy(model), slowdown_cap=4.0, max_boost_s=None)
    capped = AgingPolicy(GittinsPolicy(model), slowdown_cap=4.0, max_boost_s=2.0)
    apps = [
        AppState(app="x", run_id=str(i), arrival_s=float(i * 7 % 13), attained_s=float(i % 3))
        for i in range(12)
    ]
    fixed_keys = [unbounded.order_key(a, 20.0) for a in apps]
    for now in (13.0, 50.0, 1e4):
        for policy, keys in ((unbounded, fixed_keys), (capped, None)):
            ranks = [policy.rank(a, now) for a in apps]
            keys = keys or [policy.order_key(a, now) for a in apps]
            order = np.argsort(keys, kind="stable").tolist()
            assert np.argsort(ranks, kind="stable").tolist() == order


def test_aging_lets_an_old_big_app_overtake_a_new_small_one() -> None:
    class BySize:
        def remaining_demand(
            self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
        ) -> NDArray[np.float64]:
            return np.full(n, 100.0 if app == "big" else 1.0)

    plain = GittinsPolicy(BySize())
    aged = AgingPolicy(plain, slowdown_cap=5.0, max_boost_s=None)
    capped = AgingPolicy(plain, slowdown_cap=5.0, max_boost_s=40.0)
    big = AppState(app="big", run_id="b", arrival_s=0.0)
    now = 1000.0
    small = AppState(app="small", run_id="s", arrival_s=now)
    assert plain.rank(big, now) > plain.rank(small, now)
    assert aged.rank(big, now) < aged.rank(small, now)  # waited 1000 s > 5 x its 100 s rank
    fresh_big = AppState(app="big", run_id="b2", arrival_s=now - 100.0)
    assert aged.rank(fresh_big, now) > aged.rank(small, now)  # 100 s < 5 x 100 s
    # the boost is capped: an old big app is lifted by 40 s at most, not past the small one
    assert capped.rank(big, now) == pytest.approx(60.0)
    assert capped.rank(big, now) > capped.rank(small, now)


def test_aging_composes_with_deadline_policies_and_validates() -> None:
    model = Fixed()
    aged = with_aging(LSTFPolicy(model), 3.0)
    a = AppState(app="x", run_id="1", arrival_s=0.0, deadline_s=30.0)
    b = AppState(app="x", run_id="2", arrival_s=10.0, deadline_s=25.0)
    for now in (11.0, 20.0):
        assert (aged.rank(a, now) < aged.rank(b, now)) == (
            aged.order_key(a, now) < aged.order_key(b, now)  # type: ignore[attr-defined]
        )
    assert with_aging(aged, 2.0) is aged and with_aging(LASPolicy(), None).name == "las"
    with pytest.raises(ConfigError):
        AgingPolicy(LASPolicy(), 0.0)
    with pytest.raises(ConfigError):
        AgingPolicy(LASPolicy(), 1.0, max_boost_s=-1.0)
    assert make_policy("gittins_aging", model).name == "gittins_aging"


def test_fairness_table() -> None:
    cfg = parse_fairness_table({"enabled": True, "slowdown_cap": 5, "weights": {"a": 2}})
    assert (cfg.enabled, cfg.slowdown_cap, dict(cfg.weights)) == (True, 5.0, {"a": 2.0})
    assert parse_fairness_table({}).enabled is None
    for bad in ({"enabled": 1}, {"slowdown_cap": -1}, {"weights": {"a": 0}}, {"x": 1}):
        with pytest.raises(ConfigError):
            parse_fairness_table(bad)


class _FixedRank:
    """An inner policy whose rank is the app's attained service (any rank >= 0 will do)."""

    name = "fixed"

    def rank(self, app: AppState, now: float) -> float:
        return app.attained_s


@given(
    cap=st.floats(0.1, 50.0),
    r_old=st.floats(0.0, 1e3),
    r_new=st.floats(0.0, 1e3),
    arrival_old=st.floats(0.0, 1e5),
    late_by=st.floats(1e-3, 1e4),
    now_after=st.floats(0.0, 1e6),
)
def test_uncapped_aging_never_lets_a_much_later_app_overtake(
    cap: float, r_old: float, r_new: float, arrival_old: float, late_by: float, now_after: float
) -> None:
    """The hard bound of the uncapped guard: an app of rank r is ahead of every app that arrives
    more than cap * r seconds after it, whatever that app's rank, at any common time."""
    guard = AgingPolicy(_FixedRank(), slowdown_cap=cap, max_boost_s=math.inf)
    old = AppState(app="x", run_id="o", arrival_s=arrival_old, attained_s=r_old)
    arrival_new = arrival_old + cap * r_old + late_by
    new = AppState(app="x", run_id="n", arrival_s=arrival_new, attained_s=r_new)
    now = arrival_new + now_after
    assert guard.order_key(old, now) < guard.order_key(new, now)
    assert guard.rank(old, now) < guard.rank(new, now) + 1e-9 * max(1.0, now / cap)


def test_inf_boost_means_uncapped_in_code_and_config() -> None:
    assert AgingPolicy(LASPolicy(), 2.0, max_boost_s=math.inf).max_boost_s is None
    assert (
        parse_fairness_table({"slowdown_cap": 2, "max_boost_s": math.inf}).max_boost_s == math.inf
    )
    with pytest.raises(ConfigError):
        AgingPolicy(LASPolicy(), 2.0, max_boost_s=math.nan)
    capped = AgingPolicy(_FixedRank(), slowdown_cap=2.0, max_boost_s=5.0)
    old = AppState(app="x", run_id="o", arrival_s=0.0, attained_s=100.0)
    new = AppState(app="x", run_id="n", arrival_s=1000.0, attained_s=0.0)
    assert capped.rank(old, 1000.0) > capped.rank(new, 1000.0)  # the cap gives up the bound
