"""The oracle demand model: remaining demand drawn from the app's true program.

``learning: oracle`` hands this to the policy instead of a learned PDGraph, to check policies
against queueing theory with the learning error removed. It still only knows the app's *state*
(node, visit counts, service spent in the running stage, fan-out width), never the drawn sizes.

``remaining_latency`` is the same walk with each stage priced at its latency in isolation, the
max (not the sum) of its parallel calls' service: a lower bound on the wall-clock time left,
since the queueing the run will meet is not modelled.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.records import START, RunState
from hermes_sdk.sim.dists import Discrete, Dist
from hermes_sdk.sim.programs import DemandSampler, Program

_Demand = Literal["service", "latency"]
_TOKEN_POOL = 4096
_CACHE_LIMIT = 20_000
TOLERANCE_S = 1e-9
"""Residuals within this many seconds of zero count as done (float round-off of the clock)."""


class _LatencySampler(DemandSampler):
    """A DemandSampler whose stage price is its slowest call (the fan-out runs in parallel)."""

    def stage_services(
        self, node: str, visits: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        """Latency of one stage in isolation: the max over its calls' service seconds."""
        return self.over_calls(node, visits, rng, np.maximum)


class OracleModel:
    """A :class:`~hermes_sdk.policy.DemandModel` that samples each app's true program.

    The running stage's residual is an exact conditional quantile grid when the stage is one
    call; the rest of the run is Monte Carlo over the program, cached per (app, node, visits).
    """

    def __init__(self, programs: Mapping[str, Program], seed: int = 0) -> None:
        self.programs = programs
        self.seed = seed
        self._cache: dict[tuple[object, ...], NDArray[np.float64]] = {}
        self._dists: dict[tuple[object, ...], Dist] = {}
        self._samplers: dict[tuple[str, _Demand], DemandSampler] = {}

    def _cached(self, key: tuple[object, ...]) -> NDArray[np.float64] | None:
        return self._cache.get(key)

    def _store(self, key: tuple[object, ...], value: NDArray[np.float64]) -> NDArray[np.float64]:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        value.setflags(write=False)
        self._cache[key] = value
        return value

    def _future(
        self,
        app: str,
        node: str,
        visits: tuple[tuple[str, int], ...],
        n: int,
        kind: _Demand = "service",
    ) -> NDArray[np.float64]:
        """Demand of the rest of the run after the current visit of ``node`` ends (shuffled)."""
        key = ("future", app, node, visits, n) + (("latency",) if kind == "latency" else ())
        hit = self._cached(key)
        if hit is not None:
            return hit
        sampler = self._sampler(app, kind)
        rng = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
        if node == START:
            out = sampler.remaining(sampler.program.app.start, (), n, rng, enter=True)
        else:
            out = sampler.remaining(node, visits, n, rng, enter=False)
        return self._store(key, out)

    def _sampler(self, app: str, kind: _Demand = "service") -> DemandSampler:
        sampler = self._samplers.get((app, kind))
        if sampler is None:
            cls = _LatencySampler if kind == "latency" else DemandSampler
            sampler = self._samplers[(app, kind)] = cls(self.programs[app])
        return sampler

    def _call_dist(self, app: str, node: str, visit: int) -> Dist:
        """Law of one call's service at this visit (token-priced units: an empirical pool)."""
        unit = self.programs[app].app.units[node]
        if unit.service is not None:
            return unit.service
        key = (app, node, visit)
        dist = self._dists.get(key)
        if dist is None:
            rng = np.random.default_rng([self.seed, zlib.crc32(repr(("call", *key)).encode())])
            visits = np.full(_TOKEN_POOL, visit, dtype=np.int64)
            pool = self._sampler(app).call_services(node, visits, rng)
            dist = Discrete.of(pool.tolist(), [1.0] * _TOKEN_POOL)
            self._dists[key] = dist
        return dist

    def _stage_residual(
        self, app: str, node: str, visit: int, width: int, elapsed_s: float, n: int
    ) -> NDArray[np.float64]:
        """Remaining service of the running stage (sorted) whose calls each ran ``elapsed_s``."""
        dist = self._call_dist(app, node, visit)
        elapsed_s *= max(1, width)  # the stage's service so far, summed over its calls
        above = elapsed_s + TOLERANCE_S * (1.0 + elapsed_s)
        if width <= 1:
            grid = dist.conditional_grid(above, n)
            return grid - elapsed_s if grid.size else np.full(1, TOLERANCE_S)
        key = ("sum", app, node, visit, width, n)
        sums = self._cached(key)
        if sums is None:
            rng = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
            draws = dist.sample(rng, n * width).reshape(n, width).sum(axis=1)
            draws.sort()
            sums = self._store(key, draws)
        tail = sums[np.searchsorted(sums, above, side="right") :]
        if tail.size < max(1, n // 20):
            tail = sums[-max(1, n // 20) :]
        return np.maximum(tail - elapsed_s, TOLERANCE_S)

    def _latency_residual(
        self, app: str, node: str, visit: int, width: int, elapsed_s: float, n: int
    ) -> NDArray[np.float64]:
        """Remaining latency of the running stage: max over its calls of each call's residual."""
        dist = self._call_dist(app, node, visit)
        above = elapsed_s + TOLERANCE_S * (1.0 + elapsed_s)
        grid = dist.conditional_grid(above, n)
        if not grid.size:
            return np.full(1, TOLERANCE_S)
        residual = np.maximum(grid - elapsed_s, TOLERANCE_S)
        if width <= 1:
            return residual
        key = ("latency", app, node, visit, width, n, elapsed_s)
        rng = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
        picks = rng.integers(0, residual.size, size=(residual.size, width))
        return np.sort(residual[picks].max(axis=1))

    def remaining_latency(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """Samples (seconds) of the remaining latency of a run of ``app`` in ``state``: the walk
        of :meth:`remaining_demand` with each stage priced at its slowest call (no queueing)."""
        if state.node == START:
            return self._future(app, START, (), n, "latency")
        future = self._future(app, state.node, state.visits, n, "latency")
        if not state.running:
            return future
        visit = state.visit_count(state.node)
        residual = self._latency_residual(
            app, state.node, visit, state.width or 1, state.elapsed_s, n
        )
        m = min(residual.size, future.size)
        return residual[:m] + future[:m]

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """Samples (seconds) of the remaining demand of a run of ``app`` in ``state``.

        Returns at most ``n`` samples (fewer when a discrete law leaves fewer distinct quantiles).
        """
        if state.node == START:
            return self._future(app, START, (), n)
        future = self._future(app, state.node, state.visits, n)
        if not state.running:
            return future
        fresh = state.elapsed_s == 0.0
        key = ("fresh", app, state.node, state.visits, state.width, n)
        if fresh:
            hit = self._cached(key)
            if hit is not None:
                return hit
        visit = state.visit_count(state.node)
        residual = self._stage_residual(
            app, state.node, visit, state.width or 1, state.elapsed_s, n
        )
        m = min(residual.size, future.size)
        out = residual[:m] + future[:m]
        return self._store(key, out) if fresh else out
