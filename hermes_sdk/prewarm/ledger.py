"""Warm/cold state of each backend and the prewarm metrics, fed by observed events.

The ledger is bookkeeping only: the backend (a simulator, a subprocess, a remote service behind a
webhook) reports what happened (a start was requested, it became ready, a request arrived, it
finished, the backend was released) and the ledger keeps the state the planner decides from, the
learned cold-start time and idle-gap histogram, and the counters behind :class:`PrewarmMetrics`.
One instance per backend: a backend serves any number of concurrent requests once warm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from hermes_sdk.prewarm.keepalive import ColdStartSketch, IdleHistogram, KeepAliveConfig

Status = Literal["cold", "starting", "warm"]


@dataclass(frozen=True, slots=True)
class PrewarmMetrics:
    """Counters of one backend (or all of them summed); seconds are totals over the run.

    ``prewarm_hits``: requests that found an instance a prewarm had started (ready or starting);
    ``misses``: requests that found the backend cold and paid a full start on demand;
    ``wasted_warms``: prewarmed instances released without serving any request.
    """

    requests: int = 0
    cold_start_wait_s: float = 0.0
    warm_idle_s: float = 0.0
    prewarms: int = 0
    releases: int = 0
    prewarm_hits: int = 0
    misses: int = 0
    wasted_warms: int = 0

    def __add__(self, other: PrewarmMetrics) -> PrewarmMetrics:
        return PrewarmMetrics(
            *(getattr(self, f) + getattr(other, f) for f in PrewarmMetrics.__slots__)
        )

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON and Prometheus exposition."""
        return {f: float(getattr(self, f)) for f in PrewarmMetrics.__slots__}


@dataclass(slots=True)
class BackendState:
    """Mutable state of one backend, owned by :class:`BackendLedger`."""

    name: str
    cold_start: ColdStartSketch
    idle: IdleHistogram
    status: Status = "cold"
    inflight: int = 0
    prewarmed_unused: bool = False
    """The current instance was started by a prewarm and has served nothing yet."""
    started_at_s: float | None = None
    ready_at_s: float | None = None
    idle_since_s: float | None = None
    """When the instance last became up with nothing in flight (None while busy or cold)."""
    last_use_end_s: float | None = None
    wanted: bool = False
    """The forecast wanted this backend warm at the last decision."""
    counters: dict[str, float] = field(default_factory=dict)

    def bump(self, name: str, by: float = 1.0) -> None:
        """Add to one metrics counter."""
        self.counters[name] = self.counters.get(name, 0.0) + by

    def metrics(self, now_s: float | None = None) -> PrewarmMetrics:
        """Snapshot; with ``now_s`` the idle time of a currently idle instance is included."""
        c = dict(self.counters)
        if now_s is not None and self.idle_since_s is not None:
            c["warm_idle_s"] = c.get("warm_idle_s", 0.0) + max(0.0, now_s - self.idle_since_s)
        return PrewarmMetrics(
            requests=int(c.get("requests", 0)),
            cold_start_wait_s=c.get("cold_start_wait_s", 0.0),
            warm_idle_s=c.get("warm_idle_s", 0.0),
            prewarms=int(c.get("prewarms", 0)),
            releases=int(c.get("releases", 0)),
            prewarm_hits=int(c.get("prewarm_hits", 0)),
            misses=int(c.get("misses", 0)),
            wasted_warms=int(c.get("wasted_warms", 0)),
        )


class BackendLedger:
    """Per-backend warm state, learned start-up times and idle gaps, and metrics."""

    def __init__(
        self, keep_alive: KeepAliveConfig | None = None, default_cold_start_s: float = 10.0
    ) -> None:
        self.keep_alive_config = keep_alive or KeepAliveConfig()
        self.default_cold_start_s = default_cold_start_s
        self.backends: dict[str, BackendState] = {}

    def get(self, backend: str) -> BackendState:
        """State of ``backend`` (created cold on first mention)."""
        state = self.backends.get(backend)
        if state is None:
            state = BackendState(
                name=backend,
                cold_start=ColdStartSketch(self.default_cold_start_s),
                idle=IdleHistogram(self.keep_alive_config),
            )
            self.backends[backend] = state
        return state

    def _close_idle(self, b: BackendState, now_s: float) -> None:
        if b.idle_since_s is not None:
            b.bump("warm_idle_s", max(0.0, now_s - b.idle_since_s))
            b.idle_since_s = None

    def starting(self, backend: str, now_s: float, *, prewarm: bool) -> None:
        """A start was issued (by a prewarm, or on demand by a request)."""
        b = self.get(backend)
        if b.status != "cold":
            return
        b.status, b.started_at_s, b.ready_at_s = "starting", now_s, None
        b.prewarmed_unused = prewarm
        if prewarm:
            b.bump("prewarms")
            b.idle_since_s = now_s if b.inflight == 0 else None

    def ready(
        self, backend: str, now_s: float, startup_s: float | None = None, *, learn: bool = True
    ) -> None:
        """The instance became ready; ``startup_s`` (default: since ``starting``) is learned
        unless ``learn`` is false (readiness assumed, not observed)."""
        b = self.get(backend)
        if startup_s is None and b.started_at_s is not None:
            startup_s = now_s - b.started_at_s
        if startup_s is not None and learn:
            b.cold_start.observe(startup_s)
        b.status, b.ready_at_s = "warm", now_s
        if b.inflight == 0 and b.idle_since_s is None:
            b.idle_since_s = now_s

    def request(self, backend: str, now_s: float) -> Status:
        """A request arrived; returns the status it found (``cold`` means a miss)."""
        b = self.get(backend)
        found = b.status
        b.bump("requests")
        if b.inflight == 0 and b.last_use_end_s is not None:
            covered = b.prewarmed_unused or b.wanted
            b.idle.observe(now_s - b.last_use_end_s, covered=covered)
        if found == "cold":
            b.bump("misses")
        elif b.prewarmed_unused:
            b.bump("prewarm_hits")
        b.prewarmed_unused = False
        b.inflight += 1
        self._close_idle(b, now_s)
        return found

    def waited(self, backend: str, wait_s: float) -> None:
        """A request waited ``wait_s`` seconds for a start-up before it was served."""
        if wait_s > 0.0 and math.isfinite(wait_s):
            self.get(backend).bump("cold_start_wait_s", wait_s)

    def done(self, backend: str, now_s: float) -> None:
        """A request finished."""
        b = self.get(backend)
        b.inflight = max(0, b.inflight - 1)
        if b.inflight == 0:
            b.last_use_end_s = now_s
            if b.status != "cold":
                b.idle_since_s = now_s

    def released(self, backend: str, now_s: float) -> None:
        """The instance was stopped (scaled to zero)."""
        b = self.get(backend)
        if b.status == "cold":
            return
        self._close_idle(b, now_s)
        if b.prewarmed_unused:
            b.bump("wasted_warms")
        b.bump("releases")
        b.status, b.prewarmed_unused, b.started_at_s, b.ready_at_s = "cold", False, None, None

    def keep_alive_s(self, backend: str) -> float:
        """The learned keep-alive of ``backend`` in seconds."""
        return self.get(backend).idle.keep_alive_s()

    def metrics(self, now_s: float | None = None) -> dict[str, PrewarmMetrics]:
        """Per-backend metrics snapshot."""
        return {name: b.metrics(now_s) for name, b in self.backends.items()}

    def totals(self, now_s: float | None = None) -> PrewarmMetrics:
        """Metrics summed over backends."""
        total = PrewarmMetrics()
        for m in self.metrics(now_s).values():
            total = total + m
        return total
