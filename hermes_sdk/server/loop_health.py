"""Event-loop health of the scheduler process: garbage-collector pauses and loop lag.

Every decision the scheduler makes runs on one event loop, so anything that holds the loop
(a CPython garbage collection, a long synchronous section) delays every grant and every
events request by as long. Two histograms make such stalls visible next to
``hermes_rank_latency_seconds``:

- ``hermes_gc_pause_seconds{generation}``: each collection's duration, from ``gc.callbacks``
  (recorded into plain counters: a collection may start inside any allocation, even one made
  while a Prometheus metric holds its lock, so the callback takes no lock and allocates no
  tracked object);
- ``hermes_event_loop_lag_seconds``: how late a timer armed every :data:`LAG_PROBE_S` fires
  (a stall of D seconds shows as a lag of up to D).

The collector settings ``hermes serve`` runs with live in :mod:`hermes_sdk.server.gc_setup`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

PAUSE_BUCKETS_S: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5
)  # fmt: skip
"""Upper bounds (seconds) of both histograms' buckets."""
LAG_PROBE_S: Final = 0.02
"""Seconds between two loop-lag probes (50 timer wake-ups a second, ~0.1% of a core)."""


class Buckets:
    """A histogram kept in plain lists: safe to update from a ``gc`` callback (no lock, no
    tracked allocation). Values in seconds."""

    __slots__ = ("bounds", "counts", "total_s")

    def __init__(self, bounds: Sequence[float] = PAUSE_BUCKETS_S) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total_s = 0.0

    def observe(self, value_s: float) -> None:
        """Count one observation of ``value_s`` seconds."""
        self.counts[bisect.bisect_left(self.bounds, value_s)] += 1
        self.total_s += value_s

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus ``(le, cumulative count)`` pairs, ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class GcPauses:
    """Each garbage collection's duration per generation, via ``gc.callbacks``."""

    def __init__(self) -> None:
        self.by_generation = [Buckets() for _ in range(3)]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    @property
    def installed(self) -> bool:
        """Whether the callback is registered."""
        return self._callback in gc.callbacks

    def install(self) -> None:
        """Start recording (idempotent)."""
        if not self.installed:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        """Stop recording (idempotent)."""
        while self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


class LoopLag:
    """How late a timer fires on the running loop, probed every :data:`LAG_PROBE_S`."""

    def __init__(self, interval_s: float = LAG_PROBE_S) -> None:
        self.interval_s = interval_s
        self.buckets = Buckets()

    async def run(self) -> None:
        """Probe forever (cancel to stop)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.buckets.observe(max(0.0, loop.time() - due))


class LoopHealth(Collector):
    """Exports ``hermes_gc_pause_seconds`` and ``hermes_event_loop_lag_seconds``."""

    def __init__(self) -> None:
        self.gc = GcPauses()
        self.lag = LoopLag()

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "hermes_gc_pause_seconds",
            "Duration of each CPython garbage collection (the event loop is held meanwhile)",
            labels=["generation"],
        )
        for generation, buckets in enumerate(self.gc.by_generation):
            pauses.add_metric([str(generation)], buckets.cumulative(), buckets.total_s)
        yield pauses
        lag = HistogramMetricFamily(
            "hermes_event_loop_lag_seconds",
            f"How late a timer armed every {self.lag.interval_s} s fires on the server's loop",
        )
        lag.add_metric([], self.lag.buckets.cumulative(), self.lag.buckets.total_s)
        yield lag

    def register(self, registry: CollectorRegistry) -> None:
        """Export on ``registry``."""
        registry.register(self)

    async def context(self, _app: web.Application) -> AsyncIterator[None]:
        """aiohttp ``cleanup_ctx``: record while the app runs."""
        self.gc.install()
        probe = asyncio.ensure_future(self.lag.run())
        try:
            yield
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            self.gc.uninstall()
