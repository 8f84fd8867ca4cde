"""The fairness scenarios of ``hermes bench --tenants`` and ``benchmarks/bench_fairness.py``.

* ``flood`` / ``alone``: a suite's app mix sent by two weight-1 tenants, ``heavy`` at
  :data:`TENANT_RATIO` times ``light``'s rate, with fair sharing off and on; then ``light`` alone
  with and without the wrapper (no change expected).
* ``guard``: the suite at load 0.95, plain Gittins against Gittins with the starvation guard
  (``gittins_aging``), FCFS and the clairvoyant ``srpt_oracle`` as references, next to the worst
  slowdown no policy can beat on that run (:mod:`hermes_sdk.sim.bounds`).

Rows are JSON-ready dicts with at least ``scenario, suite, policy, n, mean, p99, max_slowdown,
tenant_share``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Final, cast

import numpy as np

from hermes_sdk.sim.bounds import max_slowdown_lower_bound
from hermes_sdk.sim.result import SimResult
from hermes_sdk.sim.run import simulate
from hermes_sdk.sim.workloads import SUITES, Workload
from hermes_sdk.sim.workloads.spec import JsonValue

TENANT_RATIO: Final = 10.0
"""The heavy tenant's arrival rate over the light tenant's."""
TENANT_LIGHT_LOAD: Final = 0.8
"""Engine load the light tenant offers on its own; heavy adds ``TENANT_RATIO`` times that."""
GUARD_POLICIES: Final = ("gittins", "gittins_aging", "srpt_oracle", "fcfs")
"""Policies of the ``guard`` scenario: the two compared, then the references."""
GUARD_LOAD: Final = 0.95


def result_row(scenario: str, suite: str, r: SimResult) -> dict[str, JsonValue]:
    """The common fields of a scenario row for one simulation result."""
    share: dict[str, JsonValue] = {t: round(s, 4) for t, s in r.tenant_share("llm").items()}
    return {
        "scenario": scenario,
        "suite": suite,
        "policy": r.policy,
        "n": int(r.n),
        "mean": round(float(r.mean), 3),
        "p99": round(float(r.p99), 3),
        "max_slowdown": round(float(r.slowdowns.max()), 3),
        "mean_slowdown": round(float(r.mean_slowdown), 3),
        "tenant_share": share,
        "wall_s": round(float(r.wall_s), 2),
    }


def tenant_flood(
    suite: str = "light",
    *,
    n_apps: int = 2400,
    warmup_apps: int = 500,
    seed: int = 1,
    alone: bool = False,
    light_load: float = TENANT_LIGHT_LOAD,
) -> Workload:
    """``suite``'s mix sent by two weight-1 tenants (oracle demand): ``light`` offering
    ``light_load`` of the engine, ``heavy`` (apps named ``<app>@heavy``) ``TENANT_RATIO`` times
    that rate; with ``alone`` only ``light``."""
    base = SUITES[suite](
        load=0.5, seed=seed, n_apps=n_apps, warmup_apps=warmup_apps, learning="oracle"
    )
    doc: Workload = copy.deepcopy(base)
    mix = cast(list[dict[str, JsonValue]], doc["apps"])
    light: list[JsonValue] = [{**a, "tenant": "light"} for a in mix]
    heavy: list[JsonValue] = [
        {
            **copy.deepcopy(a),
            "name": f"{a['name']}@heavy",
            "tenant": "heavy",
            "weight": TENANT_RATIO * float(cast(float, a.get("weight", 1.0))),
        }
        for a in mix
    ]
    doc["apps"] = light if alone else light + heavy
    arrival = cast(dict[str, JsonValue], doc["arrival"])
    scale = (light_load / 0.5) * (1.0 if alone else 1.0 + TENANT_RATIO)
    doc["arrival"] = {**arrival, "rate": float(cast(float, arrival["rate"])) * scale}
    return doc


def run_tenants(
    suite: str = "light", *, n_apps: int = 2400, warmup_apps: int = 500
) -> list[dict[str, JsonValue]]:
    """Gittins with fair sharing off and on under the flood (scenario ``tenants``), then
    ``light`` alone at load 0.9 with and without the wrapper (``light_alone``). Rows add
    ``tenant_mean`` (mean completion per tenant, s); ``tenant_share`` is each tenant's share of
    the engine's service while arrivals last."""
    rows: list[dict[str, JsonValue]] = []
    for scenario, alone, load in (
        ("tenants", False, TENANT_LIGHT_LOAD),
        ("light_alone", True, 0.9),
    ):
        n = n_apps if not alone else max(n_apps // 4, warmup_apps // 4 + 10)
        wl = tenant_flood(
            suite, n_apps=n, warmup_apps=warmup_apps // (4 if alone else 1), alone=alone,
            light_load=load,
        )  # fmt: skip
        for fair in (False, True):
            r = simulate(wl, "gittins", fairness=fair)
            tenants = np.asarray(r.tenants) if r.tenants else np.full(r.n, "light")
            means: dict[str, JsonValue] = {
                str(t): round(float(r.completion_times[tenants == t].mean()), 3)
                for t in sorted(set(tenants.tolist()))
            }
            rows.append({**result_row(scenario, suite, r), "tenant_mean": means})
    return rows


def run_guard(
    suite: str = "light",
    *,
    seeds: Sequence[int] = (1,),
    n_apps: int = 1200,
    warmup_apps: int = 250,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, JsonValue]]:
    """The ``guard`` scenario on ``suite`` at load 0.95 (online learning), one row per seed and
    policy of :data:`GUARD_POLICIES`, each with the run's ``max_slowdown_bound``."""
    rows: list[dict[str, JsonValue]] = []
    for seed in seeds:
        wl = SUITES[suite](load=GUARD_LOAD, seed=seed, n_apps=n_apps, warmup_apps=warmup_apps)
        bound = round(max_slowdown_lower_bound(wl).value, 3)
        for policy in GUARD_POLICIES:
            r = simulate(wl, policy)
            extra: dict[str, JsonValue] = {"load": GUARD_LOAD, "seed": seed}
            rows.append({**result_row("guard", suite, r), **extra, "max_slowdown_bound": bound})
            if progress is not None:
                progress(f"guard {suite} seed {seed} {policy}")
    return rows


def guard_checks(rows: Sequence[dict[str, JsonValue]]) -> dict[str, JsonValue]:
    """Per suite: the worst slowdown's drop (worst over seeds, plain / guarded), the mean's rise
    (means averaged over seeds), and per seed the drop, the mean rise, the largest drop any
    policy could reach (plain / bound) and the share of that gap the guard closes."""
    out: dict[str, JsonValue] = {}
    guard = [r for r in rows if r["scenario"] == "guard"]
    for suite in sorted({str(r["suite"]) for r in guard}):
        plain = {r["seed"]: r for r in guard if r["suite"] == suite and r["policy"] == "gittins"}
        aged = {
            r["seed"]: r for r in guard if r["suite"] == suite and r["policy"] == "gittins_aging"
        }

        def num(r: dict[str, JsonValue], key: str) -> float:
            return float(cast(float, r[key]))

        worst_plain = max(num(r, "max_slowdown") for r in plain.values())
        worst_aged = max(num(r, "max_slowdown") for r in aged.values())
        mean_plain = sum(num(r, "mean") for r in plain.values()) / len(plain)
        mean_aged = sum(num(r, "mean") for r in aged.values()) / len(aged)
        out[f"{suite}_max_slowdown_drop"] = round(worst_plain / worst_aged, 3)
        out[f"{suite}_mean_rise"] = round(mean_aged / mean_plain - 1.0, 4)
        per_seed: dict[str, JsonValue] = {}
        for seed, p in sorted(plain.items(), key=lambda kv: str(kv[0])):
            a = aged[seed]
            worst, guarded, bound = (
                num(p, "max_slowdown"), num(a, "max_slowdown"), num(p, "max_slowdown_bound")
            )  # fmt: skip
            per_seed[str(seed)] = {
                "drop": round(worst / guarded, 3),
                "mean_rise": round(num(a, "mean") / num(p, "mean") - 1.0, 4),
                "largest_possible_drop": round(worst / bound, 3),
                "gap_closed": round((worst - guarded) / max(worst - bound, 1e-9), 3),
            }
        out[f"{suite}_per_seed"] = per_seed
    return out
