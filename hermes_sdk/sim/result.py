"""What one simulation measured: completion-time statistics, deadlines, utilisation, checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class AppStats:
    """Completion time (app finish - app arrival, seconds) of one app of the mix."""

    n: int
    mean: float
    p95: float


@dataclass(frozen=True, slots=True)
class LittleCheck:
    """Little's law over the measurement window (first measured arrival to last departure):
    the time-average number of measured apps in the system, integrated by the event loop, vs
    their arrival rate x mean completion time. Every measured arrival must be matched by one
    departure at the recorded time for the two to agree."""

    mean_in_system: float
    arrival_rate: float
    """Measured apps per second of the window."""
    mean_sojourn_s: float

    @property
    def relative_error(self) -> float:
        """|L - lambda W| / (lambda W)."""
        expected = self.arrival_rate * self.mean_sojourn_s
        return abs(self.mean_in_system - expected) / expected if expected > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ColdWaitStats:
    """Time requests spent waiting for a backend to start (cold starts), seconds."""

    cold_starts: int = 0
    requests_waited: int = 0
    mean_s: float = 0.0
    """Mean cold wait over the requests that waited for one."""
    p95_s: float = 0.0
    total_s: float = 0.0
    app_mean_s: float = 0.0
    """Mean over measured apps of the cold wait on their critical path (max per stage, summed)."""


@dataclass(frozen=True, slots=True)
class SimResult:
    """Result of :func:`hermes_sdk.sim.simulate` (times in seconds)."""

    policy: str
    learning: str
    seed: int
    n: int
    """Apps measured (after warm-up)."""
    mean: float
    p50: float
    p95: float
    p99: float
    deadline_hit_rate: float | None
    """Share of measured apps with a deadline that finished by it; None if none had one."""
    n_deadline: int
    utilization: float
    """Busy share of the busiest backend's slots."""
    backend_utilization: Mapping[str, float]
    per_app: Mapping[str, AppStats]
    mean_slowdown: float
    """Mean of completion time / standalone time."""
    littles_law: LittleCheck
    cold_wait: ColdWaitStats
    events: int
    wall_s: float
    """Wall-clock seconds of the event loop (excludes drawing the apps)."""
    cpu_s: float
    """CPU seconds of this process during the event loop (robust to a busy machine)."""
    completion_times: NDArray[np.float64] = field(compare=False, repr=False)
    """Per measured app, in arrival order."""
    slowdowns: NDArray[np.float64] = field(compare=False, repr=False)
    app_names: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """App name of each entry of ``completion_times``."""
    arrival_times: NDArray[np.float64] = field(
        default_factory=lambda: np.empty(0), compare=False, repr=False
    )
    """Arrival time of each measured app (seconds on the simulation clock)."""
    demands: NDArray[np.float64] = field(
        default_factory=lambda: np.empty(0), compare=False, repr=False
    )
    """Total service demand of each measured app (seconds at speed 1), for checks."""
    tenant_service_s: Mapping[str, Mapping[str, float]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """backend -> tenant -> service seconds received between the first measured and the last
    arrival (while arrivals keep the backends loaded); empty with a single tenant."""
    tenants: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """Tenant of each entry of ``completion_times`` (empty with a single tenant)."""
    no_deadline_mean: float | None = None
    """Mean completion time of the measured apps without a deadline; None if every app had one."""
    goodput_per_s: float | None = None
    """Measured apps that met their deadline per second of the measured arrival span."""

    def tenant_share(self, backend: str) -> dict[str, float]:
        """Share (0-1) of ``backend``'s service each tenant received in the window."""
        per = self.tenant_service_s.get(backend, {})
        whole = sum(per.values())
        return {t: s / whole for t, s in sorted(per.items())} if whole > 0 else {}

    @property
    def events_per_s(self) -> float:
        """Simulator speed: events processed per wall-clock second."""
        return self.events / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def events_per_cpu_s(self) -> float:
        """Simulator speed: events processed per CPU second."""
        return self.events / self.cpu_s if self.cpu_s > 0 else math.inf

    def to_dict(self) -> dict[str, object]:
        """JSON-able summary (the ``hermes sim --json`` object)."""
        little = self.littles_law
        cold = self.cold_wait
        return {
            "policy": self.policy,
            "n": self.n,
            "mean": self.mean,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
            "deadline_hit_rate": self.deadline_hit_rate,
            "utilization": self.utilization,
            "per_app": {
                name: {"n": s.n, "mean": s.mean, "p95": s.p95} for name, s in self.per_app.items()
            },
            "learning": self.learning,
            "seed": self.seed,
            "n_deadline": self.n_deadline,
            "mean_slowdown": self.mean_slowdown,
            "backend_utilization": dict(self.backend_utilization),
            "littles_law": {
                "mean_in_system": little.mean_in_system,
                "arrival_rate": little.arrival_rate,
                "mean_sojourn_s": little.mean_sojourn_s,
                "relative_error": little.relative_error,
            },
            "cold_wait": {
                "cold_starts": cold.cold_starts,
                "requests_waited": cold.requests_waited,
                "mean_s": cold.mean_s,
                "p95_s": cold.p95_s,
                "total_s": cold.total_s,
                "app_mean_s": cold.app_mean_s,
            },
            "events": self.events,
            "events_per_s": self.events_per_s,
            "events_per_cpu_s": self.events_per_cpu_s,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
        }


def percentile(values: NDArray[np.float64], q: float) -> float:
    """``q``-th percentile (0-100) of ``values``; NaN when empty."""
    return float(np.percentile(values, q)) if values.size else math.nan
