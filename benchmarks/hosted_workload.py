"""The hosted-API benchmark's runs: the light suite's apps, drawn with their own laws.

Each run is the realised walk of one app of :func:`hermes_sdk.sim.workloads.suites.light_suite`
(all ten apps at their weights: GoT, map-reduce, code feedback, HuggingGPT, the three FacTool
apps, ReAct FEVER/ALFWorld and multi-turn chat), drawn by :class:`hermes_sdk.sim.programs.Program`
exactly as the simulator draws them: its LLM stages become parallel calls to the provider with
the drawn prompt and output tokens, its tool stages (search, container runs, DNN steps) sleep
their drawn seconds (the tools are not what the apps compete for here).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np

from hermes_sdk.sim.programs import Program, UniformStream
from hermes_sdk.sim.workload import Workload, parse_workload
from hermes_sdk.sim.workloads.suites import light_suite


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of a run: ``calls`` (prompt tokens, output tokens) to the provider in parallel,
    or (no calls) a tool step of ``tool_s`` seconds on ``backend`` (search, container, dnn)."""

    node: str
    calls: tuple[tuple[int, int], ...]
    tool_s: float
    backend: str


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    app: str
    arrival_s: float
    stages: tuple[Stage, ...]

    @property
    def tokens(self) -> int:
        """Provider tokens of the whole run (prompt + output of every call)."""
        return sum(i + o for stage in self.stages for i, o in stage.calls)

    def standalone_s(self, step_s: float) -> float:
        """Seconds the run takes with no wait at all: each stage's longest call (``step_s`` a
        generated token) or its tool step (a floor for any way of calling the provider)."""
        return sum(max((o * step_s for _, o in s.calls), default=s.tool_s) for s in self.stages)


def _suite() -> Workload:
    return parse_workload(light_suite(0.5, 1, n_apps=10, warmup_apps=0))


class RunDrawer:
    """Draws runs of the light suite's apps (app by weight, then the app's own walk)."""

    def __init__(self, seed: int) -> None:
        suite = _suite()
        self.apps = suite.apps
        self.weights = [a.weight for a in suite.apps]
        self.programs = [Program(a, suite.backends, suite.max_stages) for a in suite.apps]
        self.pick = random.Random(seed)
        self.stream = UniformStream(np.random.default_rng(seed))

    def stages(self, i: int) -> tuple[Stage, ...]:
        """One realised run of app ``i``."""
        out = []
        for s in self.programs[i].realize(self.stream):
            if s.input_tokens is not None and s.output_tokens is not None:
                outs = (max(1, o) for o in s.output_tokens)
                calls = tuple(zip(s.input_tokens, outs, strict=True))
                out.append(Stage(s.node, calls, 0.0, s.unit.backend))
            else:
                out.append(Stage(s.node, (), max(s.services_s), s.unit.backend))
        return tuple(out)

    def draw(self, run_id: str, arrival_s: float) -> Run:
        """A run of an app chosen by the suite's weights, arriving at ``arrival_s``."""
        i = self.pick.choices(range(len(self.apps)), weights=self.weights)[0]
        return Run(run_id, self.apps[i].name, arrival_s, self.stages(i))


@functools.cache
def mean_run_tokens(seed: int = 12345, n: int = 20_000) -> float:
    """Mean provider tokens of a run of the mix (``n`` draws)."""
    drawer = RunDrawer(seed)
    return float(np.mean([drawer.draw("", 0.0).tokens for _ in range(n)]))


def workload(seed: int, tpm: float, load: float, duration_s: float, tag: str) -> list[Run]:
    """Poisson arrivals over ``duration_s`` seconds offering ``load`` x ``tpm`` tokens/minute.

    The arrival times are then scaled so that the runs drawn offer that many tokens over
    ``duration_s`` (to within one run: a run's tokens vary 10x between apps, so a short Poisson
    sample offers anywhere from ~70% to ~110% of its mean otherwise).
    """
    rate = load * tpm / 60.0 / mean_run_tokens()
    target = load * tpm / 60.0 * duration_s
    arrivals = random.Random(seed * 7919 + 17)
    drawer = RunDrawer(seed)
    runs: list[Run] = []
    t = offered = 0.0
    while offered < target:
        t += arrivals.expovariate(rate)
        runs.append(drawer.draw(f"{tag}-{len(runs)}", t))
        offered += runs[-1].tokens
    scale = duration_s / (t + arrivals.expovariate(rate) / 2)  # the last just before the end
    return [Run(r.run_id, r.app, r.arrival_s * scale, r.stages) for r in runs]
