"""``simulate()``: draw a workload's apps and arrivals, run one policy over them, measure.

Apps, arrival times and deadlines depend only on the workload and the seed, never on the policy,
so results of different policies on one seed are paired (common random numbers) and their
differences have far less noise than their levels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import RunPath
from hermes_sdk.policy import DemandModel, Policy, make_policy
from hermes_sdk.policy.fairness import fairness_enabled, with_fairness
from hermes_sdk.sim.des import SimHook, Simulation
from hermes_sdk.sim.oracle import OracleModel
from hermes_sdk.sim.programs import Program, UniformStream
from hermes_sdk.sim.result import AppStats, ColdWaitStats, LittleCheck, SimResult, percentile
from hermes_sdk.sim.sim_types import EPS_S, SimApp
from hermes_sdk.sim.workload import ArrivalSpec, Workload, parse_workload

ProgressFn = Callable[[int, int], None]


def _draw_apps(wl: Workload, seed: int, programs: Mapping[str, Program]) -> list[SimApp]:
    """Draw every app run (kind, path, deadline) with arrival time 0; times are set later."""
    n = wl.n_apps
    weights = np.array([a.weight for a in wl.apps])
    kinds = np.random.default_rng([seed, 2]).choice(len(wl.apps), size=n, p=weights / weights.sum())
    deadline_u = np.random.default_rng([seed, 4]).random((n, 2))
    stream = UniformStream(np.random.default_rng([seed, 3]))
    apps = []
    for i in range(n):
        spec = wl.apps[int(kinds[i])]
        program = programs[spec.name]
        stages = program.realize(stream)
        standalone = program.standalone_s(stages)
        rel: float | None = spec.deadline_s
        if rel is None and spec.deadline_factors and deadline_u[i, 0] < spec.deadline_fraction:
            factors = spec.deadline_factors
            base = standalone if spec.deadline_base_s is None else spec.deadline_base_s
            rel = factors[min(int(deadline_u[i, 1] * len(factors)), len(factors) - 1)] * base
        apps.append(SimApp(i, spec.name, 0.0, stages, standalone, rel, spec.tenant))
    return apps


def offered_rate(wl: Workload, apps: list[SimApp], load: float) -> float:
    """Arrival rate (apps/s) at which the busiest backend's offered load is ``load``."""
    demand: dict[str, float] = {}
    for app in apps:
        for s in app.stages:
            demand[s.unit.backend] = demand.get(s.unit.backend, 0.0) + s.service_s
    best = math.inf
    for name, total in demand.items():
        capacity = wl.backends[name].capacity
        if total > 0 and math.isfinite(capacity):
            best = min(best, capacity / (total / len(apps)))
    if not math.isfinite(best):
        raise ConfigError("arrival.load: no backend with finite servers carries any demand")
    return load * best


def _arrival_times(
    spec: ArrivalSpec, n: int, rng: np.random.Generator, load_rate: Callable[[float], float]
) -> NDArray[np.float64]:
    if spec.process == "poisson":
        assert spec.rate is not None
        return np.cumsum(rng.exponential(1.0 / spec.rate, n))
    if spec.process == "load":
        assert spec.load is not None
        return np.cumsum(rng.exponential(1.0 / load_rate(spec.load), n))
    assert spec.bucket_s is not None
    rates = np.array(spec.rates, dtype=np.float64)
    if spec.relative:
        mean_rate = load_rate(spec.load) if spec.load is not None else float(spec.rate or 0.0)
        rates = rates / rates.mean() * mean_rate
    # time rescaling: unit-rate Poisson epochs mapped through the inverse cumulative rate
    cum = np.concatenate(([0.0], np.cumsum(rates * spec.bucket_s)))
    cycle_mass, cycle_s = cum[-1], spec.bucket_s * len(rates)
    epochs = np.cumsum(rng.exponential(1.0, n))
    cycles = np.floor(epochs / cycle_mass)
    rest = epochs - cycles * cycle_mass
    j = np.clip(np.searchsorted(cum, rest, side="right") - 1, 0, len(rates) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(rates[j] > 0, (rest - cum[j]) / rates[j], 0.0)
    return np.asarray(cycles * cycle_s + j * spec.bucket_s + within, dtype=np.float64)


def draw_runs(wl: Workload, seed: int) -> tuple[dict[str, Program], list[SimApp]]:
    """The app runs of ``wl`` for ``seed`` (paths, arrival times, absolute deadlines), in arrival
    order, with the programs that drew them: what every policy simulated on this seed sees."""
    programs = {a.name: Program(a, wl.backends, wl.max_stages) for a in wl.apps}
    apps = _draw_apps(wl, seed, programs)
    times = _arrival_times(
        wl.arrival,
        wl.n_apps,
        np.random.default_rng([seed, 1]),
        lambda load: offered_rate(wl, apps, load),
    )
    for app, t in zip(apps, times.tolist(), strict=True):
        app.arrival_s = t
        app.stage_start_s = t
        if app.deadline_s is not None:
            app.deadline_s += t
    return programs, apps


def _model(
    wl: Workload, programs: Mapping[str, Program], seed: int
) -> tuple[DemandModel, Callable[[RunPath], object] | None]:
    if wl.learning == "oracle":
        return OracleModel(programs, seed=seed), None
    try:
        from hermes_sdk.graph import GraphRegistry  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:  # pragma: no cover - until the graph registry lands
        raise ConfigError("learning 'online' needs hermes_sdk.graph.GraphRegistry") from exc
    registry = GraphRegistry()
    return registry, registry.observe


def simulate(
    workload: Mapping[str, Any] | Workload,
    policy: str | Policy,
    *,
    seed: int | None = None,
    progress: ProgressFn | None = None,
    fairness: bool | None = None,
    hook: Callable[[DemandModel], SimHook] | None = None,
) -> SimResult:
    """Simulate ``workload`` (a dict as in a workload file, or a parsed :class:`Workload`)
    under ``policy`` (a name from :data:`hermes_sdk.policy.POLICY_NAMES` or a Policy object).

    ``seed`` overrides the workload's seed; ``progress(done_apps, total_apps)`` is called about
    a hundred times. ``fairness`` overrides the workload's: weighted fair sharing across the
    apps' tenants (default: on when they name more than one). Raises :class:`ConfigError` for an
    invalid workload or policy name.

    ``hook(model)`` builds a :class:`~hermes_sdk.sim.des.SimHook` for the run from the demand
    model the policy ranks with (under online learning, the registry learning from these runs).
    """
    wl = workload if isinstance(workload, Workload) else parse_workload(workload)
    seed = wl.seed if seed is None else int(seed)
    programs, apps = draw_runs(wl, seed)
    model, observe = _model(wl, programs, seed)
    chosen = make_policy(policy, model, n=wl.rank_samples) if isinstance(policy, str) else policy
    tenants = wl.tenants
    if fairness_enabled(wl.fairness if fairness is None else fairness, tenants):
        chosen = with_fairness(chosen, wl.tenant_weights)
    calls = [s for app in apps[:1000] for st in app.stages for s in st.services_s]
    min_quantum = 1e-2 * (float(np.mean(calls)) if calls else 1.0)
    sim = Simulation(
        apps,
        dict(wl.backends),
        chosen,
        observe=observe if wl.learning == "online" else None,
        min_quantum_s=min_quantum,
        progress=progress,
        mark_idx=wl.warmup_apps,
        hook=None if hook is None else hook(model),
    )
    if len(tenants) > 1:
        sim.tenant_service_s = {}
        sim.service_window = (apps[wl.warmup_apps].arrival_s, apps[-1].arrival_s)
    started, cpu_started = time.perf_counter(), time.process_time()
    sim.run()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return _measure(wl, chosen.name, seed, apps, sim, wall, cpu)


def _measure(
    wl: Workload,
    policy: str,
    seed: int,
    apps: list[SimApp],
    sim: Simulation,
    wall_s: float,
    cpu_s: float,
) -> SimResult:
    measured = apps[wl.warmup_apps :]
    completion = np.array([a.finish_s - a.arrival_s for a in measured])
    standalone = np.array([max(a.standalone_s, EPS_S) for a in measured])
    names = tuple(a.name for a in measured)
    per_app: dict[str, AppStats] = {}
    for spec in wl.apps:
        mask = np.array([n == spec.name for n in names], dtype=bool)
        if mask.any():
            c = completion[mask]
            per_app[spec.name] = AppStats(int(c.size), float(c.mean()), percentile(c, 95))
    with_deadline = [a for a in measured if a.deadline_s is not None]
    hits = 0
    for a in with_deadline:
        assert a.deadline_s is not None
        hits += int(a.finish_s <= a.deadline_s + EPS_S)
    t_first = apps[0].arrival_s
    t_end = max(a.finish_s for a in apps)
    util: dict[str, float] = {}
    for name, b in sim.backends.items():
        if b.slots is not None and t_end > t_first:
            util[name] = b.busy_s / (b.slots * (t_end - t_first))
    t0 = measured[0].arrival_s
    window = max(t_end - t0, EPS_S)
    little = LittleCheck(
        mean_in_system=sim.area / window,
        arrival_rate=len(measured) / window,
        mean_sojourn_s=float(completion.mean()),
    )
    waits = np.array(sim.cold_waits)
    cold = ColdWaitStats(
        cold_starts=sum(b.cold_starts for b in sim.backends.values()),
        requests_waited=int(waits.size),
        mean_s=float(waits.mean()) if waits.size else 0.0,
        p95_s=percentile(waits, 95) if waits.size else 0.0,
        total_s=float(waits.sum()),
        app_mean_s=float(np.mean([a.cold_wait_s for a in measured])),
    )
    slowdowns = completion / standalone
    free = np.array([a.deadline_s is None for a in measured], dtype=bool)
    span = measured[-1].arrival_s - t0
    return SimResult(
        policy=policy,
        learning=wl.learning,
        seed=seed,
        n=len(measured),
        mean=float(completion.mean()),
        p50=percentile(completion, 50),
        p95=percentile(completion, 95),
        p99=percentile(completion, 99),
        deadline_hit_rate=hits / len(with_deadline) if with_deadline else None,
        n_deadline=len(with_deadline),
        utilization=max(util.values()) if util else 0.0,
        backend_utilization=util,
        per_app=per_app,
        mean_slowdown=float(slowdowns.mean()),
        littles_law=little,
        cold_wait=cold,
        events=sim.events,
        wall_s=wall_s,
        cpu_s=cpu_s,
        completion_times=completion,
        slowdowns=slowdowns,
        app_names=names,
        arrival_times=np.array([a.arrival_s for a in measured]),
        demands=np.array([a.total_s for a in measured]),
        tenant_service_s=sim.tenant_service_s or {},
        tenants=tuple(a.tenant for a in measured) if sim.tenant_service_s is not None else (),
        no_deadline_mean=float(completion[free].mean()) if free.any() else None,
        goodput_per_s=hits / span if with_deadline and span > 0 else None,
    )
