"""Apps as stochastic programs: drawing one run's path of stages (units, fan-out, call sizes).

A run is realised in full when the app arrives, from its own stretch of one uniform stream, so
every policy simulated on a workload sees exactly the same apps (common random numbers) and the
simulator knows each app's true remaining work (for ``srpt_oracle`` only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.records import END
from hermes_sdk.sim.dists import Deterministic
from hermes_sdk.sim.workload import AppSpec, BackendSpec, UnitSpec

_BUFFER = 65_536


class UniformStream:
    """Uniforms on (0, 1) drawn from ``rng`` in large blocks (fast scalar draws)."""

    __slots__ = ("_it", "_rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._it: Iterator[float] = iter(())

    def u(self) -> float:
        """The next uniform."""
        try:
            return next(self._it)
        except StopIteration:
            block = self._rng.random(_BUFFER)
            np.clip(block, 1e-16, 1.0 - 1e-16, out=block)
            self._it = iter(block.tolist())
            return next(self._it)


class RealStage(NamedTuple):
    """One drawn stage: ``node`` called ``len(services_s)`` times in parallel (a named tuple:
    the simulator draws millions)."""

    node: str
    unit: UnitSpec
    visit: int
    services_s: tuple[float, ...]
    """Seconds of backend service of each call at speed 1."""
    input_tokens: tuple[int, ...] | None = None
    output_tokens: tuple[int, ...] | None = None

    @property
    def width(self) -> int:
        """Number of parallel calls."""
        return len(self.services_s)

    @property
    def service_s(self) -> float:
        """Total demand of the stage, seconds."""
        return sum(self.services_s)


class Program:
    """Draws runs of one app over the given backends (whose time models price LLM tokens)."""

    def __init__(self, app: AppSpec, backends: Mapping[str, BackendSpec], max_stages: int) -> None:
        self.app = app
        self.backends = backends
        self.max_stages = max_stages
        self._speed1 = {name: b.speed_at(1) for name, b in backends.items()}

    def draw_stage(self, node: str, visit: int, stream: UniformStream) -> RealStage:
        """Draw the calls of the ``visit``-th visit (1-based) of ``node``."""
        unit = self.app.units[node]
        fanout = unit.fanout
        if isinstance(fanout, Deterministic):
            width = max(1, round(fanout.value))
        else:
            width = max(1, round(fanout.ppf1(stream.u())))
        tokens_in: tuple[int, ...] | None = None
        tokens_out: tuple[int, ...] | None = None
        if unit.input_tokens is not None:
            growth = unit.prompt_growth_tokens * (visit - 1)
            dist = unit.input_tokens
            tokens_in = tuple(max(0, round(dist.ppf1(stream.u()))) + growth for _ in range(width))
        if unit.output_tokens is not None:
            dist = unit.output_tokens
            tokens_out = tuple(max(0, round(dist.ppf1(stream.u()))) for _ in range(width))
        service = unit.service
        if service is not None:
            if width == 1:
                services: tuple[float, ...] = (max(0.0, service.ppf1(stream.u())),)
            else:
                services = tuple(max(0.0, service.ppf1(stream.u())) for _ in range(width))
        else:
            model = self.backends[unit.backend].time_model
            assert model is not None  # checked when the workload was parsed
            ins = tokens_in or (0,) * width
            outs = tokens_out or (0,) * width
            services = tuple(model.service_s(i, o) for i, o in zip(ins, outs, strict=True))
        return RealStage(node, unit, visit, services, tokens_in, tokens_out)

    def next_node(self, node: str, visit: int, stream: UniformStream) -> str:
        """Draw the unit that follows the ``visit``-th visit of ``node`` (or END)."""
        edges = self.app.units[node].edges(visit)
        if len(edges) == 1:
            return edges[0][0]
        u = stream.u()
        acc = 0.0
        for to, p in edges:
            acc += p
            if u <= acc:
                return to
        return edges[-1][0]

    def walk(
        self, node: str, visits: dict[str, int], stream: UniformStream, *, enter: bool
    ) -> list[RealStage]:
        """Draw the rest of a run. ``enter``: start by entering ``node``; else leave it first.

        ``visits`` (node -> times entered) is updated in place.
        """
        stages: list[RealStage] = []
        if not enter:
            node = self.next_node(node, visits.get(node, 1), stream)
        while node != END and len(stages) < self.max_stages:
            visit = visits.get(node, 0) + 1
            visits[node] = visit
            stages.append(self.draw_stage(node, visit, stream))
            node = self.next_node(node, visit, stream)
        return stages

    def realize(self, stream: UniformStream) -> list[RealStage]:
        """Draw one complete run from the start unit."""
        return self.walk(self.app.start, {}, stream, enter=True)

    def standalone_s(self, stages: list[RealStage]) -> float:
        """Run time alone on idle warm backends: the sum of each stage's longest call."""
        return sum(alone_latencies(stages, self._speed1))


def alone_latencies(stages: Sequence[RealStage], speed1: Mapping[str, float]) -> list[float]:
    """Seconds each of ``stages`` takes served alone: its longest call at one slot's speed
    (``speed1``: backend -> speed with one request running)."""
    return [max(s[3]) / speed1[s[1].backend] for s in stages]


class DemandSampler:
    """Vectorised Monte Carlo of a program's demand: ``n`` runs advanced step by step together.

    The oracle's view of the truth; equivalent in law to :meth:`Program.walk` (different draws).
    """

    def __init__(self, program: Program) -> None:
        self.program = program
        self.names = list(program.app.units)
        self.index = {name: i for i, name in enumerate(self.names)}

    def call_services(
        self, node: str, visits: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        """One call's service seconds for each entry of ``visits`` (the visit number)."""
        unit = self.program.app.units[node]
        m = visits.size
        if unit.service is not None:
            return np.maximum(unit.service.ppf(rng.random(m)), 0.0)
        model = self.program.backends[unit.backend].time_model
        assert model is not None
        tokens_in = np.zeros(m)
        tokens_out = np.zeros(m)
        if unit.input_tokens is not None:
            tokens_in = np.maximum(np.rint(unit.input_tokens.ppf(rng.random(m))), 0.0)
            tokens_in += unit.prompt_growth_tokens * (visits - 1)
        if unit.output_tokens is not None:
            tokens_out = np.maximum(np.rint(unit.output_tokens.ppf(rng.random(m))), 0.0)
        return np.asarray(
            model.overhead_s
            + model.per_input_token_s * tokens_in
            + model.per_output_token_s * tokens_out,
            dtype=np.float64,
        )

    def stage_services(
        self, node: str, visits: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        """Total service of one stage (all fan-out calls) for each entry of ``visits``."""
        return self.over_calls(node, visits, rng, np.add)

    def over_calls(
        self,
        node: str,
        visits: NDArray[np.int64],
        rng: np.random.Generator,
        combine: Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]],
    ) -> NDArray[np.float64]:
        """Draw each entry's fan-out width, then fold its calls' service seconds with ``combine``
        (``np.add``: the stage's service; ``np.maximum``: its latency in isolation)."""
        unit = self.program.app.units[node]
        fanout = unit.fanout
        m = visits.size
        if isinstance(fanout, Deterministic):
            widths = np.full(m, max(1, round(fanout.value)))
        else:
            widths = np.maximum(np.rint(fanout.ppf(rng.random(m))), 1).astype(np.int64)
        acc = np.zeros(m)
        for k in range(int(widths.max())):
            rows = np.nonzero(widths > k)[0]
            acc[rows] = combine(acc[rows], self.call_services(node, visits[rows], rng))
        return acc

    def _step(
        self, current: NDArray[np.int64], counts: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.int64]:
        """Next node index of every run (-1 = END) given its current node and visit counts."""
        out = np.full(current.size, -1, dtype=np.int64)
        for j in np.unique(current[current >= 0]).tolist():
            unit = self.program.app.units[self.names[j]]
            rows = np.nonzero(current == j)[0]
            law = np.minimum(counts[rows, j], len(unit.next)) - 1
            for li in np.unique(law).tolist():
                sub = rows[law == li]
                edges = unit.next[li]
                targets = np.array([self.index.get(to, -1) for to, _ in edges], dtype=np.int64)
                cum = np.cumsum([p for _, p in edges])
                pick = np.searchsorted(cum, rng.random(sub.size) * cum[-1], side="left")
                out[sub] = targets[np.minimum(pick, len(edges) - 1)]
        return out

    def remaining(
        self,
        node: str,
        visits: tuple[tuple[str, int], ...],
        n: int,
        rng: np.random.Generator,
        *,
        enter: bool,
    ) -> NDArray[np.float64]:
        """``n`` samples of the demand of the rest of a run (``enter``: starting with ``node``)."""
        counts = np.zeros((n, len(self.names)), dtype=np.int64)
        for name, count in visits:
            if name in self.index:
                counts[:, self.index[name]] = count
        current = np.full(n, self.index[node], dtype=np.int64)
        if not enter:
            current = self._step(current, counts, rng)
        total = np.zeros(n)
        for _ in range(self.program.max_stages):
            live = current >= 0
            if not live.any():
                break
            for j in np.unique(current[live]).tolist():
                rows = np.nonzero(current == j)[0]
                counts[rows, j] += 1
                total[rows] += self.stage_services(self.names[j], counts[rows, j], rng)
            current = self._step(current, counts, rng)
        return total
