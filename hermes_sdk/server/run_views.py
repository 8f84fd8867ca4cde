"""What the scheduler hands out about runs: one run's hints (:class:`RunHints`), read-only
snapshots of tracked runs (:class:`RunView`), and the rank input of a request whose run the
server has not seen (:class:`RequestHint`)."""

from __future__ import annotations

from dataclasses import dataclass

from hermes_sdk.graph.records import RunState
from hermes_sdk.policy.base import AppState

RunKey = tuple[str, str]
"""(tenant, run_id)."""


@dataclass(frozen=True, slots=True)
class RunHints:
    """The server's view of a run: its rank and predicted remaining demand (seconds)."""

    app: str
    run_id: str
    node: str
    rank_s: float | None
    remaining_p50_s: float | None
    remaining_p95_s: float | None
    attained_s: float
    deadline_s: float | None
    policy: str


@dataclass(frozen=True, slots=True)
class RunView:
    """Read-only snapshot of one tracked run, taken by :meth:`Scheduler.tracked_runs`.

    ``state`` is what the policy ranks the run on at the snapshot time (equal to what the
    scheduler itself would rank); the properties are shortcuts into it.
    """

    tenant: str
    run_id: str
    app: str
    last_event_s: float
    """Server time (unix seconds) of the run's latest event."""
    state: AppState

    @property
    def position(self) -> RunState:
        """Where the run is in its app's graph (node, visits, running, elapsed, width)."""
        return self.state.state

    @property
    def node(self) -> str:
        """The stage most recently entered (``START`` before the first)."""
        return self.state.state.node

    @property
    def arrival_s(self) -> float:
        """When the run started (server unix seconds)."""
        return self.state.arrival_s

    @property
    def attained_s(self) -> float:
        """Service received so far, including the running stage's elapsed time."""
        return self.state.attained_s

    @property
    def deadline_s(self) -> float | None:
        """Absolute deadline (server unix seconds), if the run has one."""
        return self.state.deadline_s


@dataclass(slots=True)
class RequestHint:
    """Rank input for a request whose run the server has not seen (gateway headers)."""

    app: str
    deadline_s: float | None
    arrival_s: float
