"""`hermes bench --deadline-sweep`: deadline hit rate of EDF, LSTF, plain and deadline Gittins.

Two deadline laws: ``slo`` (every run of a kind gets ``slo_factor x`` the kind's mean standalone
time, :func:`~hermes_sdk.sim.workloads.suites.with_slo_deadlines`: one number per kind, known
before the run) and ``run`` (``factor x`` the run's *own* standalone time, the factor drawn from
1.2/1.5/2: a deadline that tells EDF the run's true size). Each law is run with 22% and 100% of
runs carrying a deadline, at every load, on each suite, over seeds; policies on one seed see the
same runs (common random numbers), so differences are paired: :func:`cells` reports each
policy's mean hit rate and the 95% t-interval of its paired difference to EDF and plain Gittins,
the mean completion of runs without a deadline, goodput (runs meeting their deadline per second)
and the standalone bound (the share of deadline runs whose standalone time fits their deadline:
no policy can beat it by more than noise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
from scipy import stats

from hermes_sdk.policy import Policy
from hermes_sdk.sim.workloads import SUITES
from hermes_sdk.sim.workloads.spec import JsonValue, Workload
from hermes_sdk.sim.workloads.suites import DEADLINE_FACTORS, with_slo_deadlines

SWEEP_POLICIES: Final = (
    "fcfs", "edf", "lstf", "gittins_plain", "gittins_conditional", "gittins", "gittins_queue",
)  # fmt: skip
BASELINES: Final = ("edf", "gittins_plain", "gittins_conditional")
"""Policies ``gittins`` is compared with, paired by seed, in each cell (when swept)."""
CANDIDATE: Final = "gittins_queue"
"""Compared, when swept, with ``gittins`` and :data:`BASELINES` under ``cell[CANDIDATE]``, and
checked against the same targets."""
LAWS: Final = ("slo", "run")
ORACLE_PREFIX: Final = "deadline_oracle_w"
"""``deadline_oracle_w<weight>`` in a sweep's policies: the clairvoyant deadline oracle
(:mod:`hermes_sdk.policy.deadline_oracle`) with that hit weight (bench only)."""


def sweep_policy(name: str) -> str | Policy:
    """What :func:`~hermes_sdk.sim.simulate` runs for a sweep's policy ``name``: the name itself,
    or for ``deadline_oracle_w<weight>`` the oracle at that weight (named ``name``)."""
    if not name.startswith(ORACLE_PREFIX):
        return name
    from hermes_sdk.policy.deadline_oracle import DeadlineOraclePolicy

    try:
        weight = float(name[len(ORACLE_PREFIX) :])
    except ValueError:
        raise ValueError(f"bad oracle weight in policy name {name!r}") from None
    oracle = DeadlineOraclePolicy(weight=weight)
    oracle.name = name
    return oracle


@dataclass(frozen=True, slots=True)
class DeadlineConfig:
    """What one deadline sweep runs."""

    suites: tuple[str, ...] = ("paper", "light")
    loads: tuple[float, ...] = (0.7, 0.85, 0.95)
    laws: tuple[str, ...] = LAWS
    fractions: tuple[float, ...] = (0.22, 1.0)
    policies: tuple[str, ...] = SWEEP_POLICIES
    seeds: int = 3
    n_apps: int = 3000
    warmup_apps: int = 500
    slo_factor: float = 1.5
    """SLO deadline = this x the kind's mean standalone time."""
    run_factors: tuple[float, ...] = DEADLINE_FACTORS
    """Per-run deadline = a factor drawn from these x the run's own standalone time."""


@dataclass(frozen=True, slots=True)
class DeadlineRow:
    """One simulation of the sweep (times in seconds)."""

    suite: str
    load: float
    law: str
    fraction: float
    policy: str
    seed: int
    hit_rate: float
    goodput_per_s: float
    mean: float
    no_deadline_mean: float | None
    bound: float
    """Share of this seed's measured deadline runs whose standalone time fits the deadline."""
    n_deadline: int
    wall_s: float
    per_kind: tuple[tuple[str, int, int], ...] = ()
    """``(app kind, deadline hits, measured runs with a deadline)`` per kind, sorted by kind."""
    bound_per_kind: tuple[tuple[str, int, int], ...] = ()
    """``(app kind, runs whose standalone time fits, runs with a deadline)`` per kind."""


def workload(config: DeadlineConfig, suite: str, load: float, law: str, fraction: float,
             seed: int) -> Workload:  # fmt: skip
    """The workload of one sweep cell: the suite with deadlines under ``law`` on ``fraction``."""
    if law not in LAWS:
        raise ValueError(f"law must be one of {LAWS}, got {law!r}")
    make = SUITES[suite]
    kw = {"load": load, "seed": seed, "n_apps": config.n_apps, "warmup_apps": config.warmup_apps}
    if law == "slo":
        return with_slo_deadlines(make(**kw), (config.slo_factor,), fraction)
    return make(**kw, deadlines=True, deadline_factors=config.run_factors,
                deadline_fraction=fraction)  # fmt: skip


def measured_runs(wl: Workload, seed: int) -> list[tuple[str, float, float | None]]:
    """``(app kind, arrival_s, absolute deadline_s or None)`` of the measured runs, in the order
    of :class:`~hermes_sdk.sim.result.SimResult`'s per-run arrays (every policy, same seed)."""
    from hermes_sdk.sim.run import draw_runs
    from hermes_sdk.sim.workload import parse_workload

    parsed = parse_workload(wl)
    _, apps = draw_runs(parsed, seed)
    return [(a.name, a.arrival_s, a.deadline_s) for a in apps[parsed.warmup_apps :]]


def standalone_fits(wl: Workload, seed: int) -> tuple[tuple[str, int, int], ...]:
    """``(app kind, runs whose standalone time fits their deadline, measured runs with a
    deadline)`` per kind, sorted by kind: the standalone bound, kind by kind."""
    from hermes_sdk.sim.run import draw_runs
    from hermes_sdk.sim.workload import parse_workload

    parsed = parse_workload(wl)
    _, apps = draw_runs(parsed, seed)
    tally: dict[str, list[int]] = {}
    for a in apps[parsed.warmup_apps :]:
        if a.deadline_s is not None:
            t = tally.setdefault(a.name, [0, 0])
            t[0] += int(a.arrival_s + a.standalone_s <= a.deadline_s)
            t[1] += 1
    return tuple((k, f, n) for k, (f, n) in sorted(tally.items()))


def pooled_share(tally: Sequence[tuple[str, int, int]]) -> float:
    """``sum(hits) / sum(n)`` over ``(kind, hits, n)`` rows (NaN when there are no runs)."""
    total = sum(n for _, _, n in tally)
    return sum(h for _, h, _ in tally) / total if total else math.nan


def standalone_bound(wl: Workload, seed: int) -> float:
    """Share of measured runs with a deadline whose standalone time fits it (0 to 1)."""
    return pooled_share(standalone_fits(wl, seed))


def hits_per_kind(
    runs: Sequence[tuple[str, float, float | None]], completion_s: Sequence[float]
) -> tuple[tuple[str, int, int], ...]:
    """``(kind, hits, runs with a deadline)`` per app kind: run ``i`` (from :func:`measured_runs`)
    hits if ``arrival + completion_s[i]`` is by its deadline (the simulator's tolerance)."""
    from hermes_sdk.sim.sim_types import EPS_S

    if len(runs) != len(completion_s):
        raise ValueError(f"{len(runs)} runs but {len(completion_s)} completion times")
    tally: dict[str, list[int]] = {}
    for (kind, arrival, deadline), c in zip(runs, completion_s, strict=True):
        if deadline is not None:
            t = tally.setdefault(kind, [0, 0])
            t[0] += int(arrival + c <= deadline + EPS_S)
            t[1] += 1
    return tuple((k, h, n) for k, (h, n) in sorted(tally.items()))


def run_sweep(
    config: DeadlineConfig, *, step: Callable[[str], None] | None = None
) -> list[DeadlineRow]:
    """Every (suite, load, law, fraction, seed, policy) simulation, in that order."""
    from hermes_sdk.sim import simulate

    rows: list[DeadlineRow] = []
    for suite in config.suites:
        for load in config.loads:
            for law in config.laws:
                for fraction in config.fractions:
                    for seed in range(1, config.seeds + 1):
                        wl = workload(config, suite, load, law, fraction, seed)
                        fits = standalone_fits(wl, seed)
                        bound = pooled_share(fits)
                        runs = measured_runs(wl, seed)
                        for policy in config.policies:
                            start = time.perf_counter()
                            r = simulate(wl, sweep_policy(policy), seed=seed)
                            rows.append(
                                DeadlineRow(
                                    suite=suite,
                                    load=load,
                                    law=law,
                                    fraction=fraction,
                                    policy=policy,
                                    seed=seed,
                                    hit_rate=float(r.deadline_hit_rate or 0.0),
                                    goodput_per_s=float(r.goodput_per_s or 0.0),
                                    mean=float(r.mean),
                                    no_deadline_mean=r.no_deadline_mean,
                                    bound=bound,
                                    n_deadline=r.n_deadline,
                                    wall_s=time.perf_counter() - start,
                                    per_kind=hits_per_kind(runs, r.completion_times.tolist()),
                                    bound_per_kind=fits,
                                )
                            )
                            if step is not None:
                                step(f"{suite} {load:g} {law} {fraction:g} s{seed} {policy}")
    return rows


def paired_ci(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of paired differences: the two-sided Student-t interval over seeds
    (a single seed gives an infinite interval)."""
    d = np.asarray(diffs, dtype=np.float64)
    mean = float(d.mean())
    if d.size < 2:
        return mean, -math.inf, math.inf
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return mean, mean - half, mean + half


def _pooled_kinds(rows: Sequence[DeadlineRow], bound: bool = False) -> dict[str, JsonValue]:
    """Hit rate per app kind pooled over ``rows`` (hits / runs with a deadline, with ``n``);
    with ``bound``, the standalone bound per kind instead."""
    tally: dict[str, list[int]] = {}
    for r in rows:
        for kind, hits, n in r.bound_per_kind if bound else r.per_kind:
            t = tally.setdefault(kind, [0, 0])
            t[0] += hits
            t[1] += n
    return {k: {"hit_rate": round(h / n, 4), "n": n} for k, (h, n) in sorted(tally.items()) if n}


def cells(rows: Sequence[DeadlineRow]) -> list[dict[str, JsonValue]]:
    """One summary per (suite, load, law, fraction): per-policy means over seeds (and hit rates
    per app kind pooled over seeds), and the paired difference of ``gittins`` (deadline Gittins)
    to each of :data:`BASELINES` with 95% CIs."""
    groups: dict[tuple[str, float, str, float], list[DeadlineRow]] = {}
    for r in rows:
        groups.setdefault((r.suite, r.load, r.law, r.fraction), []).append(r)
    out: list[dict[str, JsonValue]] = []
    for (suite, load, law, fraction), rs in sorted(groups.items()):
        by: dict[str, dict[int, DeadlineRow]] = {}
        for r in rs:
            by.setdefault(r.policy, {})[r.seed] = r
        cell: dict[str, JsonValue] = {"suite": suite, "load": load, "law": law,
                                      "fraction": fraction}  # fmt: skip
        seeds = sorted({r.seed for r in rs})
        cell["seeds"] = len(seeds)
        cell["bound"] = round(float(np.mean([r.bound for r in rs])), 4)
        one_policy = [r for r in rs if r.policy == rs[0].policy]  # the bound is per seed
        cell["bound_per_kind"] = _pooled_kinds(one_policy, bound=True)
        policies: dict[str, JsonValue] = {}
        for policy, per in by.items():
            free = [r.no_deadline_mean for r in per.values() if r.no_deadline_mean is not None]
            policies[policy] = {
                "hit_rate": round(float(np.mean([r.hit_rate for r in per.values()])), 4),
                "goodput_per_s": round(float(np.mean([r.goodput_per_s for r in per.values()])), 5),
                "mean": round(float(np.mean([r.mean for r in per.values()])), 3),
                "no_deadline_mean": round(float(np.mean(free)), 3) if free else None,
                "per_kind": _pooled_kinds(list(per.values())),
            }
        cell["policies"] = policies
        cell.update(_versus(by, "gittins", BASELINES, seeds))
        if CANDIDATE in by:
            cell[CANDIDATE] = _versus(by, CANDIDATE, ("gittins", *BASELINES), seeds)
        out.append(cell)
    return out


def _versus(by: dict[str, dict[int, DeadlineRow]], new_policy: str, bases: Sequence[str],
            seeds: Sequence[int]) -> dict[str, JsonValue]:  # fmt: skip
    """``new_policy``'s paired hit-rate difference to each of ``bases`` (``vs_<base>``: mean and
    95% CI over common seeds) and its no-deadline mean over plain Gittins' (seed mean of ratios)."""
    out: dict[str, JsonValue] = {}
    new = by.get(new_policy, {})
    for base in bases:
        other = by.get(base, {})
        common = [s for s in seeds if s in new and s in other]
        if not common:
            continue
        diff = [new[s].hit_rate - other[s].hit_rate for s in common]
        mean, lo, hi = paired_ci(diff)
        out[f"vs_{base}"] = {"diff": round(mean, 4), "ci95": [round(lo, 4), round(hi, 4)]}
    plain = by.get("gittins_plain", {})
    ratios = [
        n / p
        for s in seeds
        if s in new
        and s in plain
        and (n := new[s].no_deadline_mean) is not None
        and (p := plain[s].no_deadline_mean) is not None
    ]
    if ratios:
        out["no_deadline_mean_vs_plain"] = round(float(np.mean(ratios)), 4)
    return out


def checks(summary: Sequence[dict[str, JsonValue]]) -> list[dict[str, JsonValue]]:
    """The issue's targets per cell: SLO at load >= 0.85, deadline Gittins >= max(EDF, plain
    Gittins) + 3 points; per-run, within 2 points of EDF; 22% mix, runs without deadlines within
    5% of plain Gittins. ``passed`` compares the seed means; the CI is reported beside it."""
    out: list[dict[str, JsonValue]] = []
    for c in summary:
        pol = c["policies"]
        assert isinstance(pol, dict)
        hit = {p: v["hit_rate"] for p, v in pol.items() if isinstance(v, dict)}
        for policy in ("gittins", CANDIDATE):
            new = hit.get(policy)
            if not isinstance(new, float):
                continue
            where: dict[str, JsonValue] = {k: c[k] for k in ("suite", "load", "law", "fraction")}
            if policy != "gittins":
                where["policy"] = policy
            load = c["load"]
            assert isinstance(load, float)
            edf, plain = hit.get("edf"), hit.get("gittins_plain")
            if c["law"] == "slo" and load >= 0.85 and isinstance(edf, float):
                best = max(edf, plain if isinstance(plain, float) else 0.0)
                out.append({**where, "check": "hit >= max(edf, gittins_plain) + 0.03",
                            "value": round(new - best, 4), "limit": 0.03,
                            "passed": new - best >= 0.03})  # fmt: skip
            if c["law"] == "run" and isinstance(edf, float):
                out.append({**where, "check": "hit >= edf - 0.02", "value": round(new - edf, 4),
                            "limit": -0.02, "passed": new - edf >= -0.02})  # fmt: skip
            mine = c.get(policy) if policy != "gittins" else c
            ratio = mine.get("no_deadline_mean_vs_plain") if isinstance(mine, dict) else None
            if isinstance(ratio, float):
                out.append({**where, "check": "no-deadline mean / gittins_plain <= 1.05",
                            "value": ratio, "limit": 1.05, "passed": ratio <= 1.05})  # fmt: skip
    return out


def sweep_json(config: DeadlineConfig, command: str, rows: Sequence[DeadlineRow]
               ) -> dict[str, JsonValue]:  # fmt: skip
    """The results document: command, config, every row, the cell summaries and the checks."""
    summary = cells(rows)
    cfg: dict[str, JsonValue] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()
    }
    row_docs: list[JsonValue] = []
    for r in rows:
        d: dict[str, JsonValue] = dict(asdict(r))
        for k in ("hit_rate", "mean", "bound", "wall_s", "no_deadline_mean"):
            v = d[k]
            if isinstance(v, float):
                d[k] = round(v, 4)
        row_docs.append(d)
    return {
        "command": command,
        "config": cfg,
        "rows": row_docs,
        "cells": list[JsonValue](summary),
        "checks": list[JsonValue](checks(summary)),
    }
