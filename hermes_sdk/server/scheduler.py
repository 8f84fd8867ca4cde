"""The scheduler: tracks runs from events, ranks them with the policy, admits per backend.

One :class:`Scheduler` per server app, at ``app[SCHEDULER]``. Ranks are computed server-side
from the run's tracked state and the app's PDGraph (client-sent ranks are never read); a run
the server does not know is served FCFS after ranked ones. Run state is written through to the
store's key/value space so replicas sharing a store see the same runs.

Its parts, one concern a module: :mod:`~hermes_sdk.server.run_events` (event batches -> tracked
runs), :mod:`~hermes_sdk.server.slot_admission` (slots acquired in rank order, released,
charged), :mod:`~hermes_sdk.server.table_refresh` (rank-table rebuilds between requests) and
:mod:`~hermes_sdk.server.run_views` (what it hands out about runs); this module builds the
policy and the queues and ranks.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, Final

import numpy as np
from aiohttp import web

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunState
from hermes_sdk.policy import make_policy
from hermes_sdk.policy.aging import with_aging
from hermes_sdk.policy.base import AppState, Policy
from hermes_sdk.policy.fairness import fairness_enabled, tenant_shares_of, with_fairness
from hermes_sdk.server.admission import AdmissionQueue
from hermes_sdk.server.completions import CompletionLog
from hermes_sdk.server.config import BackendConfig, ServerConfig
from hermes_sdk.server.global_order import GlobalOrder
from hermes_sdk.server.global_queue import admission_queue
from hermes_sdk.server.graph_sync import GraphSync
from hermes_sdk.server.ledger import RedisSlotLedger
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.paused import PausedRunStore, PausedView, paused_view
from hermes_sdk.server.run_views import RequestHint, RunHints, RunKey, RunView
from hermes_sdk.server.runs import TrackedRun
from hermes_sdk.server.slot_admission import SlotAdmission, UnknownBackend
from hermes_sdk.server.table_refresh import TableRefresher
from hermes_sdk.store import Store

__all__ = [
    "SCHEDULER",
    "RunHints",
    "RunKey",
    "RunView",
    "Scheduler",
    "UnknownBackend",
    "UnknownRun",
]

log = logging.getLogger("hermes_sdk.server")


class UnknownRun(LookupError):
    """Raised when a tenant asks about a run it does not have."""


class Scheduler(SlotAdmission):
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
        self.refresher = TableRefresher(self.registry)
        """Rank-table rebuilds paid for by learned batches."""
        self._hints: dict[RunKey, RequestHint] = {}
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

    def run_state(self, tenant: str, run_id: str) -> RunState | None:
        """Where a tenant's run is now, or None."""
        run = self._lookup((tenant, run_id))
        return None if run is None else run.run_state(self._clock())

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

    def close(self) -> None:
        """Close the registry (and with it the store) and the shared slot ledger."""
        self.refresher.close()
        self.sync.close()
        self.registry.close()
        if self.global_order is not None:
            self.global_order.close()
        if self.ledger is not None:
            self.ledger.close()


SCHEDULER: Final = web.AppKey("hermes_scheduler", Scheduler)
