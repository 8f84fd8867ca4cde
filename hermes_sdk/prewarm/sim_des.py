"""The prewarm planner inside the discrete-event simulator (``hermes_sdk.sim``).

:class:`PrewarmSimulation` is the simulator with the planner wired in: every stage start and end
updates the planner's view of the run and the backend ledger, the planner decides after every
event (and at its own wake-up times, through a virtual backend that only carries wake-ups), and
its signals drive the simulated backends' warm state: ``prewarm`` starts a cold backend's start-up
(``cold_start_s``), ``release`` turns an idle warm backend cold. Backends with a cold start get an
infinite built-in keep-alive so the planner alone decides releases. The simulator exposes no
prewarm hook yet, so this subclass overrides four of its internal methods; a public hook in
``Simulation`` (see the report of issue 8) would replace it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunState
from hermes_sdk.policy import Policy, make_policy
from hermes_sdk.prewarm.planner import GraphLookup, PrewarmPlanner
from hermes_sdk.sim.des import _COLD, _WAKE, _WARM, _WARMING, SimApp, Simulation, _Backend
from hermes_sdk.sim.programs import Program
from hermes_sdk.sim.run import _arrival_times, _draw_apps, _model, offered_rate
from hermes_sdk.sim.workload import BackendSpec, Workload, parse_workload


class PrewarmSimulation(Simulation):
    """:class:`Simulation` whose cold-start backends are warmed and released by a planner."""

    def __init__(
        self,
        apps: list[SimApp],
        backends: dict[str, BackendSpec],
        policy: Policy,
        planner: PrewarmPlanner,
        *,
        always_warm: bool = False,
        **kwargs: Any,
    ) -> None:
        self.tracked = frozenset(n for n, s in backends.items() if s.cold_start_s > 0)
        specs = {
            n: dataclasses.replace(s, keep_alive_s=math.inf, initially_warm=always_warm)
            if n in self.tracked
            else s
            for n, s in backends.items()
        }
        super().__init__(apps, specs, policy, **kwargs)
        self.planner = planner
        self.always_warm = always_warm
        self._tick = _Backend(BackendSpec("__prewarm__", servers=None), False)
        if always_warm:
            for name in self.tracked:
                planner.ledger.starting(name, 0.0, prewarm=False)
                planner.ledger.ready(name, 0.0, 0.0)

    def _enter_stage(self, app: SimApp, t: float) -> None:
        backend = app.stages[app.stage_i].unit.backend
        if backend in self.tracked:
            self.planner.ledger.request(backend, t)
        super()._enter_stage(app, t)
        stage = app.stages[app.stage_i]
        state = RunState(stage.node, tuple(sorted(app.visits.items())), running=True)
        self.planner.update_run(app.run_id, app.name, state, t)
        self.dirty.add(self._tick)

    def _request_done(self, req: Any, t: float) -> None:
        app: SimApp = req.app
        index = app.stage_i
        backend = app.stages[index].unit.backend
        super()._request_done(req, t)
        if app.pending > 0 and app.stage_i == index:
            return
        if backend in self.tracked:
            self.planner.ledger.done(backend, t)
        if app.stage_i >= len(app.stages):
            self.planner.end_run(app.run_id, t)
        self.dirty.add(self._tick)

    def _warm_up(self, b: _Backend, t: float) -> bool:
        before = b.state
        ready = super()._warm_up(b, t)
        name = b.spec.name
        if name in self.tracked:
            if before == _COLD and b.state == _WARMING:
                self.planner.ledger.starting(name, t, prewarm=False)
            if before != _WARM and b.state == _WARM:
                self.planner.ledger.ready(name, t, b.warm_at - b.warm_start)
        return ready

    def _dispatch(self, b: _Backend, t: float) -> None:
        if b is self._tick:
            self._decide(t)
        else:
            super()._dispatch(b, t)

    def _decide(self, t: float) -> None:
        if self.always_warm:
            return
        decision = self.planner.decide(t)
        for signal in decision.signals:
            b = self.backends[signal.backend]
            if signal.action == "prewarm" and b.state == _COLD:
                b.state, b.warm_start = _WARMING, t
                b.warm_at = t + b.spec.cold_start_s
                b.cold_starts += 1
                self.dirty.add(b)
            elif signal.action == "release" and b.state == _WARM and not _busy(b):
                b.state = _COLD
        tick = self._tick
        wake = decision.wake_at_s
        if math.isfinite(wake) and wake != tick.wake_t:
            tick.wake_version += 1
            tick.wake_t = wake
            self._push(max(wake, t), _WAKE, tick, tick.wake_version)


def _busy(b: _Backend) -> bool:
    return bool(b.running or b.waiting or b.held)


@dataclass(frozen=True, slots=True)
class PrewarmSimResult:
    """Outcome of :func:`simulate_prewarm` over the measured apps (after the warm-up ones)."""

    completion_s: NDArray[np.float64]
    cold_wait_s: NDArray[np.float64]
    """Seconds each measured app waited for backend start-ups."""
    app_names: tuple[str, ...]
    """The app of each entry."""
    planner: PrewarmPlanner
    end_s: float
    wall_s: float


def simulate_prewarm(
    workload: Mapping[str, Any] | Workload,
    policy: str,
    planner_for: Callable[[GraphLookup, list[str]], PrewarmPlanner],
    *,
    always_warm: bool = False,
    seed: int | None = None,
) -> PrewarmSimResult:
    """``hermes_sdk.sim.simulate`` with a prewarm planner driving the cold-start backends.

    ``planner_for(graph_lookup, cold_backends)`` builds the planner from the online-learning
    registry's lookup and the names of the backends with a cold start.
    """
    wl = workload if isinstance(workload, Workload) else parse_workload(workload)
    seed = wl.seed if seed is None else int(seed)
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
    model, observe = _model(wl, programs, seed)
    cold = sorted(n for n, s in wl.backends.items() if s.cold_start_s > 0)
    lookup: GraphLookup = model.get if isinstance(model, GraphRegistry) else _no_graph
    planner = planner_for(lookup, cold)
    chosen = make_policy(policy, model, n=wl.rank_samples)
    calls = [s for app in apps[:1000] for st in app.stages for s in st.services_s]
    sim = PrewarmSimulation(
        apps,
        dict(wl.backends),
        chosen,
        planner,
        always_warm=always_warm,
        observe=observe if wl.learning == "online" else None,
        min_quantum_s=1e-2 * (float(np.mean(calls)) if calls else 1.0),
        mark_idx=wl.warmup_apps,
    )
    started = time.perf_counter()
    sim.run()
    measured = apps[wl.warmup_apps :]
    return PrewarmSimResult(
        completion_s=np.array([a.finish_s - a.arrival_s for a in measured]),
        cold_wait_s=np.array([a.cold_wait_s for a in measured]),
        app_names=tuple(a.name for a in measured),
        planner=planner,
        end_s=max((a.finish_s for a in apps if math.isfinite(a.finish_s)), default=0.0),
        wall_s=time.perf_counter() - started,
    )


def _no_graph(app: str, tenant: str) -> None:
    return None
