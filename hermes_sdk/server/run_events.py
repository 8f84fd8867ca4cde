"""How the scheduler applies run events: tracked runs started, moved, paused and ended from
event batches (the state the ranks are computed from), with paths learned on the way.

:class:`RunEvents` is a part of :class:`~hermes_sdk.server.scheduler.Scheduler` (its base
class), kept here so each module reads as one concern; it only uses the scheduler's state
declared below.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final

from hermes_sdk.errors import GraphError, InvalidRequest
from hermes_sdk.graph.records import RunPath
from hermes_sdk.server.admission import AdmissionQueue
from hermes_sdk.server.completions import CompletionLog
from hermes_sdk.server.graph_sync import GraphSync
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.paused import PausedRunStore
from hermes_sdk.server.run_views import RequestHint, RunKey
from hermes_sdk.server.runs import TrackedRun
from hermes_sdk.server.table_refresh import TableRefresher
from hermes_sdk.server.wire import (
    Event,
    RunEnd,
    RunPause,
    RunStart,
    UnitEnd,
    UnitStart,
    parse_batch,
)
from hermes_sdk.store import Store

RUNS_NAMESPACE: Final = "runs"
APPLY_CHUNK = 16
"""Events applied per event-loop turn by :meth:`RunEvents.apply_async` (~0.3 ms of work)."""


class RunEvents:
    """Event application for :class:`~hermes_sdk.server.scheduler.Scheduler`."""

    store: Store
    metrics: ServerMetrics
    sync: GraphSync
    refresher: TableRefresher
    completions: CompletionLog
    paused_store: PausedRunStore
    queues: dict[str, AdmissionQueue]
    _clock: Callable[[], float]
    _shared_runs: bool
    _runs: dict[RunKey, TrackedRun]
    _hints: dict[RunKey, RequestHint]
    _n_paused: int
    _slowdowns: dict[str, deque[float]]

    def ingest(self, tenant: str, events: list[dict[str, object]]) -> int:
        """Validate and apply wire-format events (blocking); returns how many were accepted."""
        parsed, dropped = parse_batch({"events": events}, tenant)
        return self.apply(tenant, parsed, dropped)[0]

    def apply(self, tenant: str, events: list[Event], dropped: int = 0) -> tuple[int, int]:
        """Apply validated events; paths are durably stored before this returns (blocking).

        Returns (accepted, rejected); unit events for runs the tenant never started are rejected.
        """
        paths = self._paths_of(events)
        if paths:
            self.sync.store_and_fold(paths)
            self.refresher.now()
        return self._apply_state(tenant, events, dropped)

    async def apply_async(
        self, tenant: str, events: list[Event], dropped: int = 0
    ) -> tuple[int, int]:
        """:meth:`apply` for the event loop: paths go out in a shared write off the loop, and
        the events are applied :data:`APPLY_CHUNK` at a time, one chunk per loop turn (a
        51-event batch held the loop ~1 ms in one piece; grants and releases now run between
        its chunks). Each event is applied in order; a request arriving meanwhile may see the
        batch's first chunks applied and not the rest. Cancelled between chunks (the client
        went away), it applies the rest before it re-raises: a batch is applied whole or not at
        all, so a client's retry cannot apply its first events twice."""
        paths = self._paths_of(events)
        if paths:
            await self.sync.write(paths)
            self.refresher.soon()
        if len(events) <= APPLY_CHUNK:
            return self._apply_state(tenant, events, dropped)
        accepted = rejected = 0
        cancelled: asyncio.CancelledError | None = None
        for start in range(0, len(events), APPLY_CHUNK):
            if start and cancelled is None:
                try:
                    await asyncio.sleep(0)  # one loop turn for whatever is ready meanwhile
                except asyncio.CancelledError as exc:
                    cancelled = exc
            chunk = events[start : start + APPLY_CHUNK]
            a, r = self._apply_state(tenant, chunk, dropped if start == 0 else 0)
            accepted, rejected = accepted + a, rejected + r
        if cancelled is not None:
            raise cancelled
        return accepted, rejected

    def _paths_of(self, events: list[Event]) -> list[RunPath]:
        paths = [ev.path for ev in events if isinstance(ev, RunEnd) and ev.path is not None]
        try:
            self.sync.validate(paths)
        except GraphError as exc:
            raise InvalidRequest(f"path cannot be learned: {exc}") from None
        return paths

    def _apply_state(self, tenant: str, events: list[Event], dropped: int) -> tuple[int, int]:
        now_s = self._clock()
        touched: dict[RunKey, TrackedRun] = {}
        ended: set[RunKey] = set()
        accepted = rejected = 0
        pauses_changed = self._shared_runs  # a run read from the store may be (un)paused
        for ev in events:
            key = (tenant, ev.run_id)
            if isinstance(ev, RunStart):
                run = self._lookup(key, refresh=key not in touched)
                if run is None:
                    run = TrackedRun(tenant, ev.run_id, ev.app, now_s, ev.deadline_s)
                    self._runs[key] = run
                    self._hints.pop(key, None)
                elif run.paused:  # the same run id again: the paused run resumes
                    self._resume(run, now_s)
                    pauses_changed = True
                touched[key] = run
                ended.discard(key)
                accepted += 1
            elif isinstance(ev, (UnitStart, UnitEnd)):
                run = self._lookup(key, refresh=key not in touched)
                ok = run is not None
                if run is not None and isinstance(ev, UnitStart):
                    run.unit_started(ev, now_s)
                elif run is not None and isinstance(ev, UnitEnd):
                    ok = run.unit_ended(ev)
                if ok and run is not None:
                    touched[key] = run
                    accepted += 1
                else:
                    rejected += 1
            elif isinstance(ev, RunPause):
                run = self._lookup(key, refresh=key not in touched)
                if run is None:
                    rejected += 1
                    continue
                run.pause(now_s)
                pauses_changed = True
                self.paused_store.save(run)
                touched[key] = run
                accepted += 1
            elif isinstance(ev, RunEnd):
                done = self._runs.pop(key, None)
                if done is not None and done.paused:  # ended while paused (abandoned)
                    self.paused_store.forget(done)
                    pauses_changed = True
                elif done is not None:  # per-app completion times (server/app_classes.py)
                    self.completions.record(
                        tenant, done.app, now_s, now_s - done.arrival_s, ev.failed
                    )
                if done is not None and ev.path is not None:
                    self._observe_slowdown(tenant, now_s - done.arrival_s, ev.path)
                if done is not None or self._shared_runs:
                    ended.add(key)
                touched.pop(key, None)
                accepted += 1
        for run in touched.values():
            run.last_event_s = now_s
        if self._shared_runs:  # replicas read runs from the store; one process keeps them here
            for key, run in touched.items():
                self.store.put_json(_runs_ns(key[0]), key[1], run.to_json())
            for key in ended:
                self.store.put_json(_runs_ns(key[0]), key[1], {"ended": True})
        for key in touched:
            for q in self.queues.values():
                q.rerank(key)
        self.metrics.events_accepted.inc(accepted)
        self.metrics.events_rejected.inc(rejected)
        self.metrics.events_dropped.inc(dropped)
        self._count_runs(recount=pauses_changed)
        return accepted, rejected

    def _lookup(self, key: RunKey, *, refresh: bool = True) -> TrackedRun | None:
        run = self._runs.get(key)
        if run is not None and not (refresh and self._shared_runs):
            return run
        if not self._shared_runs:
            return run
        raw = self.store.get_json(_runs_ns(key[0]), key[1])
        stored = TrackedRun.from_json(raw) if raw is not None else None
        if stored is None or stored.tenant != key[0]:
            if raw is not None and raw.get("ended"):
                self._runs.pop(key, None)
                return None
            return run
        if run is None or stored.version >= run.version:
            self._runs[key] = stored
            return stored
        return run

    def _resume(self, run: TrackedRun, now_s: float) -> None:
        """A paused run runs again: its pause is recorded, its stored pause cleared."""
        self.metrics.run_paused_s.observe(run.resume(now_s))
        self.paused_store.forget(run)

    def _count_runs(self, *, recount: bool = True) -> None:
        """Set the active/paused gauges; ``recount=False`` when no run's pause changed since the
        last count (a scan of every run per event batch costs milliseconds at 10,000 runs)."""
        if recount:
            self._n_paused = sum(1 for run in self._runs.values() if run.paused)
        self.metrics.runs_active.set(len(self._runs) - self._n_paused)
        self.metrics.runs_paused.set(self._n_paused)

    def _observe_slowdown(self, tenant: str, run_s: float, path: RunPath) -> None:
        """Record a finished run's slowdown: run time / own service (critical path) time."""
        own_s = sum(max((c.service_s for c in st.calls), default=0.0) for st in path.stages)
        if own_s <= 0.0:
            return
        recent = self._slowdowns.setdefault(tenant, deque(maxlen=1000))
        recent.append(max(1.0, run_s / own_s))
        self.metrics.tenant_max_slowdown.labels(tenant).set(max(recent))


def _runs_ns(tenant: str) -> str:
    return f"{RUNS_NAMESPACE}:{tenant}"
