"""The simulator's hook: observes stages and start-ups, ticks, and warms or releases backends."""

from __future__ import annotations

import math

import numpy as np

from hermes_sdk.policy import DemandModel
from hermes_sdk.sim.des import Simulation
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.run import simulate
from hermes_sdk.sim.sim_types import SimApp
from hermes_sdk.sim.workloads.spec import Workload
from hermes_sdk.sim.workloads.suites import paper_suite


class Recorder:
    """Counts every call; optionally keeps every cold-start backend warm from the first tick."""

    def __init__(self, warm: bool = False) -> None:
        self.warm = warm
        self.started = self.done = self.finished = self.ticks = 0
        self.starting: list[str] = []
        self.ready: list[tuple[str, float]] = []
        self.prewarmed = 0

    def stage_started(self, app: SimApp, t: float) -> None:
        self.started += 1

    def stage_done(self, app: SimApp, stage: RealStage, t: float) -> None:
        self.done += 1
        if app.stage_i == len(app.stages):
            assert app.finish_s == t
            self.finished += 1

    def backend_starting(self, backend: str, t: float) -> None:
        self.starting.append(backend)

    def backend_ready(self, backend: str, t: float, startup_s: float) -> None:
        self.ready.append((backend, startup_s))

    def tick(self, sim: Simulation, t: float) -> float:
        self.ticks += 1
        if self.warm:
            for name, b in sim.backends.items():
                self.prewarmed += sim.prewarm(name, t)
                if b.spec.cold_start_s == 0:
                    assert not sim.release(name)  # always warm
        return math.inf


def workload() -> Workload:
    return paper_suite(0.85, 1, n_apps=300, warmup_apps=30)


def test_an_observing_hook_changes_nothing_and_sees_every_stage() -> None:
    plain = simulate(workload(), "fcfs")
    seen = Recorder()

    def build(model: DemandModel) -> Recorder:
        return seen

    hooked = simulate(workload(), "fcfs", hook=build)
    assert np.array_equal(plain.completion_times, hooked.completion_times)
    assert plain.cold_wait == hooked.cold_wait
    assert seen.finished == 300
    assert seen.started == seen.done > seen.finished
    assert seen.ticks > 0
    assert len(seen.starting) == plain.cold_wait.cold_starts
    assert [b for b, _ in seen.ready] == seen.starting
    assert all(s > 0 for _, s in seen.ready)


def test_prewarm_from_the_hook_starts_backends_before_requests_need_them() -> None:
    plain = simulate(workload(), "fcfs")
    assert plain.cold_wait.total_s > 0
    warm = Recorder(warm=True)
    res = simulate(workload(), "fcfs", hook=lambda model: warm)
    assert warm.prewarmed > 0
    # only a request before the first tick finds a backend cold
    assert len(warm.starting) == 1
    assert res.cold_wait.cold_starts == warm.prewarmed + 1
    assert res.cold_wait.requests_waited < plain.cold_wait.requests_waited
    assert res.cold_wait.total_s < plain.cold_wait.total_s
