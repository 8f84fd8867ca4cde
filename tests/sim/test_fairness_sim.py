"""Simulator: weighted fair sharing across tenants and the starvation guard."""

from __future__ import annotations

from typing import Any

import pytest

from hermes_sdk.sim import simulate
from hermes_sdk.sim.workloads import light_suite


def _units() -> dict[str, Any]:
    return {
        "gen": {"kind": "llm", "backend": "llm", "service": {"dist": "exponential", "mean": 1.0},
                "next": [{"to": "act", "p": 0.5}, {"to": "END", "p": 0.5}]},
        "act": {"kind": "tool", "backend": "tools",
                "service": {"dist": "exponential", "mean": 0.2}, "next": [{"to": "gen", "p": 1.0}]},
    }  # fmt: skip


def two_tenants(
    *,
    light_load: float = 0.8,
    ratio: float = 10.0,
    alone: bool = False,
    weights: dict[str, float] | None = None,
    n_apps: int = 600,
) -> dict[str, Any]:
    """Tenant ``light`` offers ``light_load`` of a 4-slot engine, ``heavy`` ``ratio`` times that."""
    apps: list[dict[str, Any]] = [
        {"name": "light_app", "tenant": "light", "start": "gen", "units": _units()}
    ]
    if not alone:
        apps.append(
            {"name": "heavy_app", "tenant": "heavy", "start": "gen", "units": _units(),
             "weight": ratio}
        )  # fmt: skip
    doc: dict[str, Any] = {
        "seed": 1,
        "n_apps": n_apps,
        "warmup_apps": n_apps // 10,
        "learning": "oracle",
        "arrival": {"process": "load", "load": light_load * (1.0 if alone else 1.0 + ratio)},
        "backends": {"llm": {"servers": 4}, "tools": {"servers": "inf"}},
        "apps": apps,
    }
    if weights is not None:
        doc["tenants"] = weights
    return doc


def test_equal_weights_split_a_saturated_backend_despite_a_10x_flood() -> None:
    fair = simulate(two_tenants(), "gittins")
    assert fair.policy == "gittins+fair"  # on by itself: the apps name two tenants
    share = fair.tenant_share("llm")
    assert share["light"] >= 0.45 and share["heavy"] >= 0.45, share
    unfair = simulate(two_tenants(), "gittins", fairness=False)
    assert unfair.tenant_share("llm").get("light", 0.0) < 0.45  # the flood wins without it


def test_weights_set_the_split() -> None:
    result = simulate(two_tenants(weights={"light": 1.0, "heavy": 3.0}), "gittins")
    share = result.tenant_share("llm")
    assert share["heavy"] == pytest.approx(0.75, abs=0.04), share


def test_fcfs_inside_tenants_is_shared_fairly_too() -> None:
    share = simulate(two_tenants(), "fcfs").tenant_share("llm")
    assert min(share.values()) >= 0.45, share


def test_the_light_tenant_alone_sees_no_change() -> None:
    doc = two_tenants(alone=True, light_load=0.7, n_apps=800)
    plain = simulate(doc, "gittins")
    wrapped = simulate(doc, "gittins", fairness=True)
    assert wrapped.policy == "gittins+fair" and plain.policy == "gittins"
    assert wrapped.mean == pytest.approx(plain.mean, rel=1e-9)
    assert wrapped.p99 == pytest.approx(plain.p99, rel=1e-9)
    assert plain.tenant_service_s == {}  # single tenant: nothing to account


def test_off_switch_in_the_workload() -> None:
    doc = two_tenants(n_apps=200)
    doc["fairness"] = False
    assert simulate(doc, "fcfs").policy == "fcfs"


@pytest.mark.slow
def test_starvation_guard_bounds_the_worst_slowdown_at_load_095() -> None:
    """Light suite at load 0.95 (oracle demand, seed 1): the worst slowdown falls by >= 1.8x
    for a mean within 10% (the issue asks 5x; see benchmarks/results/fairness.json)."""
    wl = light_suite(load=0.95, seed=1, n_apps=1200, warmup_apps=250, learning="oracle")
    plain = simulate(wl, "gittins")
    guarded = simulate(wl, "gittins_aging")
    assert guarded.mean <= 1.10 * plain.mean
    assert float(plain.slowdowns.max()) >= 1.8 * float(guarded.slowdowns.max())


def test_bench_tenants_scenario_rows() -> None:
    """`hermes bench --tenants` runs this: off/on under the flood, then light alone."""
    from hermes_sdk.sim.fairness_runs import run_tenants

    rows = run_tenants("light", n_apps=300, warmup_apps=60)
    assert [(r["scenario"], r["policy"]) for r in rows] == [
        ("tenants", "gittins"),
        ("tenants", "gittins+fair"),
        ("light_alone", "gittins"),
        ("light_alone", "gittins+fair"),
    ]
    off, on, alone, alone_fair = rows
    assert isinstance(on["tenant_share"], dict) and isinstance(off["tenant_share"], dict)
    assert float(on["tenant_share"]["light"]) > float(off["tenant_share"]["light"])
    assert alone["mean"] == alone_fair["mean"]


def test_guard_scenario_reports_the_bound_and_the_gap_closed() -> None:
    """The guard rows carry each run's worst-slowdown bound; no policy is below it, and the
    checks derive the drop, the mean rise and the gap closed from the rows."""
    from hermes_sdk.sim.fairness_runs import GUARD_POLICIES, guard_checks, run_guard

    rows = run_guard("light", seeds=(1, 2), n_apps=240, warmup_apps=40)
    assert [(r["seed"], r["policy"]) for r in rows] == [
        (s, p) for s in (1, 2) for p in GUARD_POLICIES
    ]

    def num(value: Any) -> float:
        return float(value)

    for r in rows:
        assert num(r["max_slowdown"]) >= num(r["max_slowdown_bound"]) * (1 - 1e-3), r
    per_seed = guard_checks(rows)["light_per_seed"]
    assert isinstance(per_seed, dict) and set(per_seed) == {"1", "2"}
    for seed, c in per_seed.items():
        assert isinstance(c, dict)
        by_policy = {r["policy"]: r for r in rows if r["seed"] == int(seed)}
        plain, aged = by_policy["gittins"], by_policy["gittins_aging"]
        assert num(c["drop"]) == pytest.approx(
            num(plain["max_slowdown"]) / num(aged["max_slowdown"]), rel=1e-2
        )
        assert num(c["mean_rise"]) == pytest.approx(
            num(aged["mean"]) / num(plain["mean"]) - 1.0, abs=1e-3
        )
        assert num(c["largest_possible_drop"]) >= num(c["drop"]) * (1 - 1e-2)
        assert num(c["gap_closed"]) <= 1.0 + 1e-2
