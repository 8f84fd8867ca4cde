"""The one policy interface: ``rank(app, now) -> float``, lower runs first (ties by arrival).

Policies see an :class:`AppState`; those that predict use a :class:`DemandModel` (the PDGraph
registry in production, the true distributions in the simulator's oracle mode).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.records import RunState


@dataclass(frozen=True, slots=True)
class AppState:
    """What a scheduler knows about one running app (all times in seconds on one clock)."""

    app: str
    run_id: str
    arrival_s: float
    """When the run started."""
    attained_s: float = 0.0
    """Service the run has received so far (sum over its completed and running calls)."""
    state: RunState = field(default_factory=RunState)
    """Position of the run in its app's PDGraph."""
    deadline_s: float | None = None
    """Absolute deadline on the same clock as ``arrival_s``, if the run has one."""
    request_arrival_s: float | None = None
    """Arrival of the request now waiting for a backend (request-level FCFS); None = arrival_s."""
    tenant: str = "default"
    true_remaining_s: float | None = None
    """Clairvoyant remaining work; only the simulator sets it, only ``srpt_oracle`` reads it."""
    true_remaining_latency_s: float | None = None
    """Clairvoyant remaining wall-clock time served alone (seconds); the simulator sets it for
    policies that ask (``clairvoyant_latency``), only ``deadline_oracle`` reads it."""


@runtime_checkable
class DemandModel(Protocol):
    """Anything that predicts an app's remaining service demand as samples (seconds)."""

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """``n`` samples of remaining service seconds for a run of ``app`` in ``state``."""
        ...


@runtime_checkable
class Policy(Protocol):
    """A scheduling policy: lower rank runs first; equal ranks run in arrival order."""

    name: str

    def rank(self, app: AppState, now: float) -> float:
        """Rank of ``app`` at time ``now`` (seconds); lower runs first."""
        ...


def wrapped_policies(policy: Policy) -> Iterator[Policy]:
    """``policy`` and each policy it wraps (aging, fairness: their ``inner``), outermost first;
    the last one is the policy that ranks."""
    while True:
        yield policy
        inner = getattr(policy, "inner", None)
        if inner is None:
            return
        policy = inner
