"""The scheduler: tracks runs from events, ranks them with the policy, admits per backend.

One :class:`Scheduler` per server app, at ``app[SCHEDULER]``. Ranks are computed server-side
from the run's tracked state and the app's PDGraph (client-sent ranks are never read); a run
the server does not know is served FCFS after ranked ones. Run state is written through to the
store's key/value space so replicas sharing a store see the same runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np
from aiohttp import web

from hermes_sdk.errors import GraphError, InvalidRequest
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.rank_tables import RankTables
from hermes_sdk.graph.records import RunPath, RunState
from hermes_sdk.policy import make_policy
from hermes_sdk.policy.aging import with_aging
from hermes_sdk.policy.base import AppState, Policy
from hermes_sdk.policy.fairness import fairness_enabled, tenant_shares_of, with_fairness
from hermes_sdk.server.admission import AdmissionQueue, Lease, ledger_member
from hermes_sdk.server.completions import CompletionLog
from hermes_sdk.server.config import BackendConfig, ServerConfig
from hermes_sdk.server.global_order import GlobalOrder
from hermes_sdk.server.global_queue import admission_queue, release_elsewhere
from hermes_sdk.server.graph_sync import GraphSync
from hermes_sdk.server.ledger import RedisSlotLedger
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.paused import PausedRunStore, PausedView, paused_view
from hermes_sdk.server.runs import TrackedRun
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

log = logging.getLogger("hermes_sdk.server")

RUNS_NAMESPACE: Final = "runs"
RunKey = tuple[str, str]
"""(tenant, run_id)."""


class UnknownBackend(LookupError):
    """Raised for a backend name the server was not configured with."""


class UnknownRun(LookupError):
    """Raised when a tenant asks about a run it does not have."""


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
class _Hint:
    """Rank input for a request whose run the server has not seen (gateway headers)."""

    app: str
    deadline_s: float | None
    arrival_s: float


class Scheduler:
    """Runs, ranks and admission queues of one server; mutated only on the event loop.

    Read-only views for the server's own consumers (dashboard, prewarm poller):

    - :meth:`tracked_runs` -- an immutable snapshot (a tuple of frozen :class:`RunView`) of the
      runs this replica tracks (started, not ended, not forgotten as idle), optionally of one
      tenant only. It never reads through the store, so it is cheap enough to call per request
      or poll tick; use :meth:`run` / :meth:`run_state` for one run's read-through state.
    """

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        metrics: ServerMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self._clock = clock
        self._shared_runs = config.store_url.startswith(("redis://", "rediss://"))
        self.sync = GraphSync(store, shared=self._shared_runs)
        self.registry: GraphRegistry = self.sync.registry
        if self.registry.rank_tables is not None:
            self.registry.rank_tables.on_rebuild = metrics.rank_table_rebuilds.inc
        metrics.watch_graphs(self.registry)
        self.policy: Policy = make_policy(config.policy, self.registry)
        fair = config.fairness  # starvation guard, then fair sharing across tenants
        self.policy = with_aging(self.policy, fair.slowdown_cap, fair.max_boost_s)
        tenants = {*fair.weights, *(k.tenant for k in config.api_keys)}
        if fairness_enabled(fair.enabled, tenants):
            self.policy = with_fairness(self.policy, fair.weights)
        self.shares = tenant_shares_of(self.policy)
        self._held: dict[str, tuple[str, str]] = {}
        """Fair sharing: lease_id -> (backend, tenant) of leases granted and not yet released."""
        self._slowdowns: dict[str, deque[float]] = {}
        self.completions = CompletionLog()
        """Ended runs' completion times per (tenant, app), for the per-app-class endpoints."""
        # Deadline policies' ranks fall with time; queued waiters ranked at different moments
        # are compared by the policy's time-invariant order key instead (same order at any now).
        self._order_key: Callable[[AppState, float], float] | None = (
            getattr(self.policy, "order_key", None)
            if getattr(self.policy, "time_varying", False)
            else None
        )
        self._runs: dict[RunKey, TrackedRun] = {}
        self._n_paused = 0
        """How many of ``_runs`` are paused (recounted whenever a pause may have changed)."""
        self._refresher: asyncio.Task[None] | None = None
        """The task rebuilding due rank tables between requests (see ``_refresh_soon``)."""
        self._refresh_credit = 0
        """Tables the learned batches paid for and the task has not rebuilt yet."""
        self._hints: dict[RunKey, _Hint] = {}
        self.paused_store = PausedRunStore(store)
        for paused in self.paused_store.load():  # paused runs outlive a restart
            self._runs[(paused.tenant, paused.run_id)] = paused
        self._count_runs()
        self.queues: dict[str, AdmissionQueue] = {}
        backends = dict(config.backends)
        for up in config.upstreams:
            backends.setdefault(up.name, BackendConfig(max_inflight=up.max_inflight))
        self._gauges: dict[str, tuple[Any, Any, Any]] = {}
        self.ledger = RedisSlotLedger(config.store_url) if self._shared_runs else None
        self.global_order = (  # one waiting order across replicas (see global_order)
            GlobalOrder(config.store_url, fair=self.shares is not None)
            if self.ledger is not None and config.global_order
            else None
        )
        for name, bc in backends.items():
            self.queues[name] = admission_queue(
                name,
                bc.max_inflight,
                bc.lease_s,
                self._rank_key,
                ledger=self.ledger,
                order=self.global_order,
                pick_tenant=None if self.shares is None else partial(self.shares.pick, name),
                weight_of=None if self.shares is None else self.shares.weight,
            )
            self._gauges[name] = (
                metrics.queue_depth.labels(name),
                metrics.inflight.labels(name),
                metrics.queue_wait_s.labels(name),
            )

    def now_s(self) -> float:
        """The scheduler's clock (unix seconds)."""
        return self._clock()

    # --- ranking ---------------------------------------------------------------------------

    def _app_state(
        self, key: RunKey, now_s: float, request_arrival_s: float | None = None
    ) -> AppState | None:
        run = self._runs.get(key)
        if run is not None:  # a paused run holds no rank
            return None if run.paused else run.app_state(now_s, request_arrival_s)
        hint = self._hints.get(key)
        if hint is None:
            return None
        return AppState(
            app=hint.app,
            run_id=key[1],
            arrival_s=hint.arrival_s,
            deadline_s=None if hint.deadline_s is None else hint.arrival_s + hint.deadline_s,
            request_arrival_s=request_arrival_s,
            tenant=key[0],
        )

    @property
    def time_varying(self) -> bool:
        """True when queue keys are order keys (deadline policies), not ranks in seconds."""
        return self._order_key is not None

    def _rank_state(self, state: AppState, now_s: float, *, ordering: bool = False) -> float:
        t0 = time.perf_counter()
        try:
            if ordering and self._order_key is not None:
                rank = float(self._order_key(state, now_s))
            else:
                rank = float(self.policy.rank(state, now_s))
        except Exception:  # a policy bug must not stall admission: fall back to FCFS
            log.exception(
                "policy %s failed to rank %s/%s", self.policy.name, state.app, state.run_id
            )
            rank = math.inf
        self.metrics.rank_latency_s.observe(time.perf_counter() - t0)
        self.metrics.ranks_computed.inc()
        return math.inf if math.isnan(rank) else rank

    def _rank_key(self, key: Hashable | None, waited_s: float) -> float:
        if not isinstance(key, tuple):
            return math.inf
        now_s = self._clock()
        state = self._app_state(key, now_s, request_arrival_s=now_s - waited_s)
        return math.inf if state is None else self._rank_state(state, now_s, ordering=True)

    def rank_of(self, tenant: str, run_id: str) -> float | None:
        """The run's current rank in seconds (lower first), None if the tenant has no such run."""
        now_s = self._clock()
        state = self._app_state((tenant, run_id), now_s)
        return None if state is None else self._rank_state(state, now_s)

    def hints(self, tenant: str, run_id: str, *, n: int = 1000) -> RunHints:
        """Rank and remaining-demand summary of one of ``tenant``'s runs; UnknownRun if absent."""
        run = self._lookup((tenant, run_id))
        if run is None:
            raise UnknownRun(run_id)
        now_s = self._clock()
        state = run.app_state(now_s)
        rank = self._rank_state(state, now_s)
        p50 = p95 = None
        tables = self.registry.rank_tables
        if tables is not None:  # the same tables the rank came from: a lookup
            found = tables.hints(run.app, state.state, tenant)
            p50, p95 = found.p50_s, found.p95_s
        else:
            samples = self.registry.remaining_demand(run.app, state.state, tenant=tenant, n=n)
            if len(samples):
                p50, p95 = (float(x) for x in np.quantile(samples, [0.5, 0.95]))
        return RunHints(
            app=run.app,
            run_id=run_id,
            node=run.node,
            rank_s=None if math.isinf(rank) else rank,
            remaining_p50_s=p50,
            remaining_p95_s=p95,
            attained_s=state.attained_s,
            deadline_s=run.deadline_s,
            policy=self.policy.name,
        )

    def run(self, tenant: str, run_id: str) -> TrackedRun | None:
        """A tenant's tracked run (read-through from the store), or None."""
        return self._lookup((tenant, run_id))

    def tracked_runs(
        self, tenant: str | None = None, *, now_s: float | None = None
    ) -> tuple[RunView, ...]:
        """Snapshot of the runs tracked by this replica (all tenants', or ``tenant``'s only).

        Each view's ``state`` is taken at ``now_s`` (default: the scheduler's clock). Order is
        unspecified. Local only: with a shared store, runs other replicas track are not listed.
        """
        if now_s is None:
            now_s = self._clock()
        return tuple(
            RunView(owner, run_id, run.app, run.last_event_s, run.app_state(now_s))
            for (owner, run_id), run in self._runs.items()
            if (tenant is None or owner == tenant) and not run.paused
        )

    def paused_runs(
        self, tenant: str | None = None, *, now_s: float | None = None
    ) -> tuple[PausedView, ...]:
        """Snapshot of the paused runs (all tenants', or ``tenant``'s): not in
        :meth:`tracked_runs`, ranked nowhere, waiting in no queue."""
        if now_s is None:
            now_s = self._clock()
        return tuple(
            paused_view(run, now_s)
            for (owner, _), run in self._runs.items()
            if (tenant is None or owner == tenant) and run.paused
        )

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

    def run_state(self, tenant: str, run_id: str) -> RunState | None:
        """Where a tenant's run is now, or None."""
        run = self._lookup((tenant, run_id))
        return None if run is None else run.run_state(self._clock())

    # --- admission -------------------------------------------------------------------------

    def queue(self, backend: str) -> AdmissionQueue:
        """The admission queue of ``backend``; UnknownBackend if not configured."""
        q = self.queues.get(backend)
        if q is None:
            raise UnknownBackend(backend)
        return q

    async def acquire(
        self,
        backend: str,
        *,
        tenant: str,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
        timeout_s: float | None = None,
        cost: float = 0.0,
    ) -> Lease:
        """Wait for a slot on ``backend``; raises QueueTimeout after ``timeout_s``.

        ``cost`` (tokens) is charged to the backend queue's rate budget, if it has one.
        """
        q = self.queue(backend)
        key: RunKey | None = None
        if run_id is not None:
            key = (tenant, run_id)
            known = self._runs.get(key)
            if known is not None and known.paused:  # a request: the run is running again
                self._resume(known, self._clock())
                self._count_runs()
            if key not in self._runs and app is not None:
                self._hints.setdefault(key, _Hint(app, deadline_s, self._clock()))
        self._gauges[backend][0].set(q.depth + 1)
        if self.shares is not None:
            self.shares.enter(backend, tenant)
        try:
            lease = await q.acquire(tenant=tenant, run_key=key, timeout_s=timeout_s, cost=cost)
        except BaseException:
            if self.shares is not None:
                self.shares.leave(backend, tenant)
            raise
        finally:
            self._observe_queue(q)
            if key is not None and key in self._hints and not self._waiting(key):
                del self._hints[key]
        self._gauges[backend][2].observe(lease.waited_s)
        if self.shares is not None:
            self._held[lease.lease_id] = (backend, tenant)
        return lease

    def release(self, lease_id: str, *, tenant: str | None = None) -> bool:
        """Release a lease (only its own tenant's when ``tenant`` is given).

        With a shared ledger a lease granted by another replica is released there too.
        """
        for q in self.queues.values():
            lease = q.lease(lease_id)
            if lease is not None:
                if tenant is not None and lease.tenant != tenant:
                    return False
                self._charge(q.backend, lease)  # before the release grants the slot again
                q.release(lease_id)
                self._observe_queue(q)
                return True
        if self.ledger is not None and tenant is not None:
            ledger = self.ledger
            return any(release_elsewhere(q, ledger, tenant, lease_id) for q in self.queues.values())
        return False

    def renew(self, lease_id: str, *, tenant: str | None = None) -> Lease | None:
        """Extend one of ``tenant``'s leases by its backend's lease_s; None if unknown."""
        for q in self.queues.values():
            lease = q.lease(lease_id)
            if lease is not None:
                if tenant is not None and lease.tenant != tenant:
                    return None
                return q.renew(lease_id)
        if self.ledger is not None and tenant is not None:  # granted by another replica
            member = ledger_member(tenant, lease_id)
            for q in self.queues.values():
                if self.ledger.extend(q.backend, member, q.lease_s):
                    now = time.monotonic()
                    return Lease(
                        lease_id, q.backend, tenant, None, math.nan, 0.0, now, now + q.lease_s
                    )
        return None

    @asynccontextmanager
    async def slot(
        self,
        backend: str,
        *,
        tenant: str,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
        timeout_s: float | None = None,
        cost: float = 0.0,
    ) -> AsyncIterator[Lease]:
        """Hold one slot of ``backend`` for the body of the ``async with``."""
        lease = await self.acquire(
            backend,
            tenant=tenant,
            run_id=run_id,
            app=app,
            deadline_s=deadline_s,
            timeout_s=timeout_s,
            cost=cost,
        )
        try:
            yield lease
        finally:
            self.release(lease.lease_id)

    def reclaim_expired(self) -> int:
        """Reclaim leases held past their backend's lease_s; returns how many."""
        total = 0
        for q in self.queues.values():
            if q.reconcile():
                self._observe_queue(q)
            n = q.reclaim_expired()
            if n:
                self.metrics.leases_reclaimed.labels(q.backend).inc(n)
                self._observe_queue(q)
            total += n
        if self.shares is not None:  # reclaimed or released elsewhere: no longer backlogged
            for lease_id, (backend, tenant) in list(self._held.items()):
                if self.queues[backend].lease(lease_id) is None:
                    del self._held[lease_id]
                    self.shares.leave(backend, tenant)
        return total

    def forget_idle_runs(self) -> int:
        """Drop runs with no event for ``run_idle_s`` (their clients died) and runs paused for
        longer than ``pause_horizon_s`` (abandoned); returns how many."""
        now_s = self._clock()
        cutoff = now_s - self.config.run_idle_s
        idle = [
            key
            for key, run in self._runs.items()
            if (run.last_event_s < cutoff and not run.paused)
            or run.paused_for_s(now_s) > self.config.pause_horizon_s
        ]
        for key in idle:
            run = self._runs.pop(key)
            if run.paused:
                self.paused_store.forget(run)
                self.metrics.runs_abandoned.inc()
        if idle:
            self._count_runs()
        return len(idle)

    def _charge(self, backend: str, lease: Lease) -> None:
        """Count a released lease's hold time as service its tenant received on ``backend``
        (the fair share of a budgeted upstream is charged its tokens when granted instead:
        :mod:`~hermes_sdk.server.gateway_budget`)."""
        held_s = max(0.0, time.monotonic() - lease.granted_at_s)
        self.metrics.tenant_service_s.labels(backend, lease.tenant).inc(held_s)
        if self.shares is None:
            return
        if self._held.pop(lease.lease_id, None) is not None:
            self.shares.leave(backend, lease.tenant)
        if self.queues[backend].budget is None:
            self.shares.charge(backend, lease.tenant, held_s)
        for tenant, share in self.shares.shares(backend).items():
            self.metrics.tenant_service_share.labels(backend, tenant).set(share)

    def _observe_slowdown(self, tenant: str, run_s: float, path: RunPath) -> None:
        """Record a finished run's slowdown: run time / own service (critical path) time."""
        own_s = sum(max((c.service_s for c in st.calls), default=0.0) for st in path.stages)
        if own_s <= 0.0:
            return
        recent = self._slowdowns.setdefault(tenant, deque(maxlen=1000))
        recent.append(max(1.0, run_s / own_s))
        self.metrics.tenant_max_slowdown.labels(tenant).set(max(recent))

    def _waiting(self, key: RunKey) -> bool:
        return any(w[2] == key for q in self.queues.values() for w in q.waiting())

    def _observe_queue(self, q: AdmissionQueue) -> None:
        depth, inflight, _ = self._gauges[q.backend]
        depth.set(q.depth)
        inflight.set(q.inflight)

    # --- events ----------------------------------------------------------------------------

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
            self._refresh_rank_tables()
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
            self._refresh_soon()
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

    def _refresh_soon(self) -> None:
        """After learning on the event loop: the batch pays for REFRESH_BUDGET due rank tables,
        rebuilt by a task a few steps per loop turn (:meth:`RankTables.refresh_step`: one Monte
        Carlo walk or grid point each, at most REFRESH_STEP_S per turn), so requests are served
        between the steps of a rebuild; lookups meanwhile read the old table."""
        tables = self.registry.rank_tables
        if tables is None:
            return
        self._refresh_credit = min(self._refresh_credit + REFRESH_BUDGET, MAX_REFRESH_CREDIT)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh_tables(tables))

    async def _refresh_tables(self, tables: RankTables) -> None:
        try:
            while self._refresh_credit > 0:
                built, more = tables.refresh_step(REFRESH_STEP_S)
                self._refresh_credit -= built
                if not more:
                    self._refresh_credit = 0  # nothing due: no credit is carried over
                    break
                await asyncio.sleep(0)
        except Exception:  # a rebuild bug must not stop serving: lookups rebuild past the bound
            log.exception("rank table refresh failed")

    def _refresh_rank_tables(self) -> None:
        """After learning: rebuild a few rank tables that fell due (the learning step pays
        for them, not the events that rank)."""
        tables = self.registry.rank_tables
        if tables is not None and tables.due():
            tables.refresh(REFRESH_BUDGET)

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

    def close(self) -> None:
        """Close the registry (and with it the store) and the shared slot ledger."""
        if self._refresher is not None:
            self._refresher.cancel()
        self.sync.close()
        self.registry.close()
        if self.global_order is not None:
            self.global_order.close()
        if self.ledger is not None:
            self.ledger.close()


APPLY_CHUNK = 16
"""Events applied per event-loop turn by :meth:`Scheduler.apply_async` (~0.3 ms of work)."""
REFRESH_BUDGET = 2
"""Rank tables rebuilt per learned batch of paths (each takes about a millisecond)."""
REFRESH_STEP_S = 0.0003
"""Seconds of rebuild steps per event-loop turn (a step is ~0.05-0.2 ms; at least one runs).
``math.inf``: a whole table per turn, as before the steps."""
MAX_REFRESH_CREDIT = 64
"""Rebuilds the learned batches may have paid for and the task not done yet (a backlog)."""


def _runs_ns(tenant: str) -> str:
    return f"{RUNS_NAMESPACE}:{tenant}"


SCHEDULER: Final = web.AppKey("hermes_scheduler", Scheduler)
