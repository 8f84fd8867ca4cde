"""Server-side state of running apps, built from events: where each run is in its graph.

A :class:`TrackedRun` turns unit start/end events into the :class:`RunState` and attained
service the policy ranks on. Top-level units that overlap form one stage (same name: fan-out;
different names: the composite node ``"a|b"``), matching how instrumentation forms stages.
Runs are serialised with :meth:`TrackedRun.to_json` so replicas can share them via the store.

A run can be *paused* (``run_pause``: it waits for a person or an event, e.g. a LangGraph
interrupt) and resumed (its next ``run_start``). Paused time is neither demand nor a competing
wait: a paused run has no rank, and on resume its arrival moves forward by the pause, so age-
based ordering (FCFS, the aging guard) and its deadline count active time only.
"""

from __future__ import annotations

import math

import msgspec

from hermes_sdk.graph.records import START, RunState
from hermes_sdk.policy.base import AppState
from hermes_sdk.server.wire import UnitEnd, UnitStart


class RunningUnit(msgspec.Struct, frozen=True, gc=False):
    """A unit that started and has not ended (times on the server's unix clock).

    Atoms only, so it cannot be part of a reference cycle: ``gc=False`` keeps it (and the
    run's ``units`` dict holding only these) out of the collector, which saw one new tracked
    object per unit start (3,000 a second at 6,000 events/s) and a tracked dict per run.
    """

    node: str
    started_s: float
    input_tokens: int | None
    top_level: bool


class TrackedRun(msgspec.Struct, gc=False):
    """One running app as the scheduler sees it; mutated only by the scheduler.

    Its fields are atoms and dicts of atoms or :class:`RunningUnit`, nothing that can refer
    back to it, so it takes no part in reference cycles: ``gc=False`` keeps the 10,000 runs of
    a busy scheduler (and their dicts, untracked while they hold only untracked values) out
    of every collection (3 tracked objects per run before: the run, its ``units`` dict and
    the running unit).
    """

    tenant: str
    run_id: str
    app: str
    arrival_s: float
    deadline_s: float | None = None
    """Relative to ``arrival_s``."""
    attained_s: float = 0.0
    node: str = START
    visits: dict[str, int] = msgspec.field(default_factory=dict)
    units: dict[str, RunningUnit] = msgspec.field(default_factory=dict)
    stage_started_s: float = 0.0
    version: int = 0
    last_event_s: float = 0.0
    """Server time of the latest event (idle runs are forgotten after a while)."""
    paused_at_s: float | None = None
    """Server time the run paused at, while it is paused."""
    paused_s: float = 0.0
    """Seconds paused before the current pause (completed pauses)."""

    @property
    def paused(self) -> bool:
        """Whether the run is waiting to be resumed."""
        return self.paused_at_s is not None

    def pause(self, now_s: float) -> None:
        """The run stopped to wait (its running units, if any, are cut: the app is not running)."""
        if self.paused_at_s is None:
            self.paused_at_s = now_s
            self.units.clear()
            self.version += 1

    def resume(self, now_s: float) -> float:
        """The run runs again; returns the seconds this pause lasted."""
        if self.paused_at_s is None:
            return 0.0
        waited = max(0.0, now_s - self.paused_at_s)
        self.paused_s += waited
        self.arrival_s += waited
        self.paused_at_s = None
        self.version += 1
        return waited

    def paused_for_s(self, now_s: float) -> float:
        """Seconds the current pause has lasted (0 when running)."""
        return 0.0 if self.paused_at_s is None else max(0.0, now_s - self.paused_at_s)

    def _stage_names(self) -> list[str]:
        return [u.node for u in self.units.values() if u.top_level]

    def unit_started(self, ev: UnitStart, now_s: float) -> None:
        """Apply a unit_start: a new stage, or a branch joining the stage now running."""
        top_level = ev.parent_id is None or ev.parent_id not in self.units
        current = self._stage_names() if top_level else []
        self.units[ev.unit_id] = RunningUnit(ev.node, now_s, ev.input_tokens, top_level)
        if not top_level:
            return
        if not current:
            self.node = ev.node
            self.visits[ev.node] = self.visits.get(ev.node, 0) + 1
            self.stage_started_s = now_s
        else:
            new_node = "|".join(sorted({*current, ev.node}))
            if new_node != self.node:
                self._count(self.node, -1)
                self._count(new_node, +1)
                self.node = new_node
        self.version += 1

    def unit_ended(self, ev: UnitEnd) -> bool:
        """Apply a unit_end; False when the unit is unknown (its start was never seen)."""
        unit = self.units.pop(ev.unit_id, None)
        if unit is None:
            return False
        if unit.top_level:
            self.attained_s += ev.service_s
            self.version += 1
        return True

    def _count(self, node: str, delta: int) -> None:
        if node == START:
            return
        n = self.visits.get(node, 0) + delta
        if n > 0:
            self.visits[node] = n
        else:
            self.visits.pop(node, None)

    def run_state(self, now_s: float) -> RunState:
        """Position of the run in its app's graph at ``now_s`` (unix seconds)."""
        running = [u for u in self.units.values() if u.top_level]
        tokens = [u.input_tokens for u in running if u.input_tokens is not None]
        return RunState(
            node=self.node,
            visits=tuple(sorted(self.visits.items())),
            running=bool(running),
            elapsed_s=max(0.0, now_s - self.stage_started_s) if running else 0.0,
            input_tokens=sum(tokens) if tokens else None,
            width=len(running) if running else None,
        )

    def app_state(self, now_s: float, request_arrival_s: float | None = None) -> AppState:
        """What the policy ranks on."""
        state = self.run_state(now_s)
        running_s = state.elapsed_s * (state.width or 1)
        return AppState(
            app=self.app,
            run_id=self.run_id,
            arrival_s=self.arrival_s,
            attained_s=self.attained_s + running_s,
            state=state,
            deadline_s=None if self.deadline_s is None else self.arrival_s + self.deadline_s,
            request_arrival_s=request_arrival_s,
            tenant=self.tenant,
        )

    def to_json(self) -> dict[str, object]:
        """JSON-able dict (for the store's key/value namespace)."""
        return {
            "tenant": self.tenant,
            "run_id": self.run_id,
            "app": self.app,
            "arrival_s": self.arrival_s,
            "deadline_s": self.deadline_s,
            "attained_s": self.attained_s,
            "node": self.node,
            "visits": dict(self.visits),
            "units": {
                uid: [u.node, u.started_s, u.input_tokens, u.top_level]
                for uid, u in self.units.items()
            },
            "stage_started_s": self.stage_started_s,
            "version": self.version,
            "paused_at_s": self.paused_at_s,
            "paused_s": self.paused_s,
        }

    @staticmethod
    def from_json(d: dict[str, object]) -> TrackedRun | None:
        """Inverse of :meth:`to_json`; None for a malformed or ended record."""
        try:
            if d.get("ended"):
                return None
            units_raw = d.get("units", {})
            visits_raw = d.get("visits", {})
            assert isinstance(units_raw, dict) and isinstance(visits_raw, dict)
            deadline = d.get("deadline_s")
            paused_at = d.get("paused_at_s")
            run = TrackedRun(
                tenant=str(d["tenant"]),
                run_id=str(d["run_id"]),
                app=str(d["app"]),
                arrival_s=float(d["arrival_s"]),  # type: ignore[arg-type]
                deadline_s=None if deadline is None else float(deadline),  # type: ignore[arg-type]
                attained_s=float(d.get("attained_s", 0.0)),  # type: ignore[arg-type]
                node=str(d.get("node", START)),
                visits={str(k): int(v) for k, v in visits_raw.items()},
                units={
                    str(k): RunningUnit(str(v[0]), float(v[1]), v[2], bool(v[3]))
                    for k, v in units_raw.items()
                },
                stage_started_s=float(d.get("stage_started_s", 0.0)),  # type: ignore[arg-type]
                version=int(d.get("version", 0)),  # type: ignore[call-overload]
                paused_at_s=None if paused_at is None else float(paused_at),  # type: ignore[arg-type]
                paused_s=float(d.get("paused_s", 0.0)),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError, IndexError, AssertionError):
            return None
        if not math.isfinite(run.arrival_s) or not math.isfinite(run.paused_s):
            return None
        if run.paused_at_s is not None and not math.isfinite(run.paused_at_s):
            return None
        return run
