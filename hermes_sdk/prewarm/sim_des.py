"""The prewarm planner inside the discrete-event simulator (``hermes_sdk.sim``).

:class:`PlannerHook` is a :class:`~hermes_sdk.sim.des.SimHook` that wires the planner in: every
stage start and end updates the planner's view of the run and the backend ledger, the planner
decides at the simulator's ticks (after every event with a stage start or end, and at its own
wake-up times), and its signals drive the simulated backends' warm state: ``prewarm`` starts a
cold backend's start-up (``cold_start_s``), ``release`` turns an idle warm backend cold.
:func:`simulate_prewarm` runs ``hermes_sdk.sim.simulate`` with it; backends with a cold start get
an infinite built-in keep-alive so the planner alone decides releases.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunState
from hermes_sdk.policy import DemandModel
from hermes_sdk.prewarm.planner import GraphLookup, PrewarmPlanner
from hermes_sdk.sim.des import Simulation
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.run import simulate
from hermes_sdk.sim.sim_types import SimApp
from hermes_sdk.sim.workload import Workload, parse_workload


class PlannerHook:
    """Simulator hook: the planner sees the runs and the ``tracked`` backends' start-ups, and its
    signals warm and release them. With ``always_warm`` it only observes (the backends start
    warm and stay so)."""

    def __init__(
        self, planner: PrewarmPlanner, tracked: frozenset[str], *, always_warm: bool = False
    ) -> None:
        self.planner = planner
        self.tracked = tracked
        self.always_warm = always_warm
        self.end_s = 0.0
        """Latest app finish so far."""
        self.cold_wait_s: dict[int, float] = {}
        """Seconds each finished app (by index) waited for backend start-ups."""
        if always_warm:
            for name in tracked:
                planner.ledger.starting(name, 0.0, prewarm=False)
                planner.ledger.ready(name, 0.0, 0.0)

    def stage_started(self, app: SimApp, t: float) -> None:
        stage = app.stages[app.stage_i]
        if stage.unit.backend in self.tracked:
            self.planner.ledger.request(stage.unit.backend, t)
        state = RunState(stage.node, tuple(sorted(app.visits.items())), running=True)
        self.planner.update_run(app.run_id, app.name, state, t)

    def stage_done(self, app: SimApp, stage: RealStage, t: float) -> None:
        if stage.unit.backend in self.tracked:
            self.planner.ledger.done(stage.unit.backend, t)
        if app.stage_i >= len(app.stages):
            self.planner.end_run(app.run_id, t)
            self.cold_wait_s[app.idx] = app.cold_wait_s
            self.end_s = max(self.end_s, t)

    def backend_starting(self, backend: str, t: float) -> None:
        if backend in self.tracked:
            self.planner.ledger.starting(backend, t, prewarm=False)

    def backend_ready(self, backend: str, t: float, startup_s: float) -> None:
        if backend in self.tracked:
            self.planner.ledger.ready(backend, t, startup_s)

    def tick(self, sim: Simulation, t: float) -> float:
        if self.always_warm:
            return math.inf
        decision = self.planner.decide(t)
        for signal in decision.signals:
            if signal.action == "prewarm":
                sim.prewarm(signal.backend, t)
            elif signal.action == "release":
                sim.release(signal.backend)
        return decision.wake_at_s


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
    registry's lookup and the names of the backends with a cold start. No tenant fair sharing.
    """
    wl = workload if isinstance(workload, Workload) else parse_workload(workload)
    tracked = frozenset(n for n, s in wl.backends.items() if s.cold_start_s > 0)
    backends = {
        n: dataclasses.replace(s, keep_alive_s=math.inf, initially_warm=always_warm)
        if n in tracked
        else s
        for n, s in wl.backends.items()
    }
    hooks: list[PlannerHook] = []

    def hook(model: DemandModel) -> PlannerHook:
        lookup: GraphLookup = model.get if isinstance(model, GraphRegistry) else _no_graph
        planner = planner_for(lookup, sorted(tracked))
        hooks.append(PlannerHook(planner, tracked, always_warm=always_warm))
        return hooks[-1]

    res = simulate(
        dataclasses.replace(wl, backends=backends), policy, seed=seed, fairness=False, hook=hook
    )
    (done,) = hooks
    return PrewarmSimResult(
        completion_s=res.completion_times,
        cold_wait_s=np.array([done.cold_wait_s[i] for i in range(wl.warmup_apps, wl.n_apps)]),
        app_names=res.app_names,
        planner=done.planner,
        end_s=done.end_s,
        wall_s=res.wall_s,
    )


def _no_graph(app: str, tenant: str) -> None:
    return None
