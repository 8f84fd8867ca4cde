"""Prometheus metrics of one scheduler app, in its own CollectorRegistry (no global state)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from hermes_sdk.graph.registry import GraphRegistry
from hermes_sdk.server.loop_health import LoopHealth

_WAIT_BUCKETS_S: Final = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300)
_RANK_BUCKETS_S: Final = (0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1)
_ANSWER_BUCKETS_S: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5
)  # fmt: skip


@dataclass(slots=True)
class ServerMetrics:
    """Every metric the scheduler exports; the gateway may register its own on ``registry``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    queue_depth: Gauge = field(init=False)
    inflight: Gauge = field(init=False)
    queue_wait_s: Histogram = field(init=False)
    acquire_timeouts: Counter = field(init=False)
    leases_reclaimed: Counter = field(init=False)
    ranks_computed: Counter = field(init=False)
    rank_latency_s: Histogram = field(init=False)
    rank_table_rebuilds: Counter = field(init=False)
    grant_answer_s: Histogram = field(init=False)
    runs_active: Gauge = field(init=False)
    runs_paused: Gauge = field(init=False)
    runs_abandoned: Counter = field(init=False)
    run_paused_s: Histogram = field(init=False)
    events_accepted: Counter = field(init=False)
    events_rejected: Counter = field(init=False)
    events_dropped: Counter = field(init=False)
    paths_stored: Counter = field(init=False)
    tenant_service_s: Counter = field(init=False)
    tenant_service_share: Gauge = field(init=False)
    tenant_max_slowdown: Gauge = field(init=False)
    loop_health: LoopHealth = field(init=False)
    """GC pauses and event-loop lag (recorded while the app runs: ``loop_health.context``)."""

    def __post_init__(self) -> None:
        r = self.registry
        self.queue_depth = Gauge(
            "hermes_queue_depth", "Requests waiting for a slot", ["backend"], registry=r
        )
        self.inflight = Gauge("hermes_inflight", "Leases currently held", ["backend"], registry=r)
        self.queue_wait_s = Histogram(
            "hermes_queue_wait_seconds",
            "Time from acquire to grant",
            ["backend"],
            buckets=_WAIT_BUCKETS_S,
            registry=r,
        )
        self.acquire_timeouts = Counter(
            "hermes_acquire_timeouts",
            "Acquires answered 429 after the server timeout",
            ["backend"],
            registry=r,
        )
        self.leases_reclaimed = Counter(
            "hermes_leases_reclaimed", "Leases reclaimed after lease_s", ["backend"], registry=r
        )
        self.ranks_computed = Counter("hermes_ranks_computed", "Policy ranks computed", registry=r)
        self.rank_latency_s = Histogram(
            "hermes_rank_latency_seconds",
            "Time to compute one rank",
            buckets=_RANK_BUCKETS_S,
            registry=r,
        )
        self.rank_table_rebuilds = Counter(
            "hermes_rank_table_rebuilds",
            "Per-state rank tables built or rebuilt (hermes_sdk.graph.rank_tables)",
            registry=r,
        )
        self.grant_answer_s = Histogram(
            "hermes_grant_answer_seconds",
            "From a queued request's grant (the release that freed its slot) to its answer",
            ["backend"],
            buckets=_ANSWER_BUCKETS_S,
            registry=r,
        )
        self.runs_active = Gauge(
            "hermes_runs_active", "Runs started, not ended and not paused", registry=r
        )
        self.runs_paused = Gauge(
            "hermes_runs_paused", "Runs paused (waiting for a person or an event)", registry=r
        )
        self.runs_abandoned = Counter(
            "hermes_runs_abandoned",
            "Paused runs dropped after pause_horizon_s without a resume",
            registry=r,
        )
        self.run_paused_s = Histogram(
            "hermes_run_paused_seconds",
            "Length of each completed pause of a run (seconds)",
            buckets=(1.0, 10.0, 60.0, 600.0, 3600.0, 6 * 3600.0, 86_400.0),
            registry=r,
        )
        self.events_accepted = Counter("hermes_events_accepted", "Events applied", registry=r)
        self.events_rejected = Counter(
            "hermes_events_rejected", "Events refused (malformed or for unknown runs)", registry=r
        )
        self.events_dropped = Counter(
            "hermes_events_dropped", "Events clients report dropping (full queue)", registry=r
        )
        self.paths_stored = Counter(
            "hermes_paths_stored", "Completed run paths durably stored", registry=r
        )
        self.tenant_service_s = Counter(
            "hermes_tenant_service_seconds",
            "Lease seconds each tenant held on a backend (service received)",
            ["backend", "tenant"],
            registry=r,
        )
        self.tenant_service_share = Gauge(
            "hermes_tenant_service_share",
            "Share (0-1) of a backend's service each tenant received since start",
            ["backend", "tenant"],
            registry=r,
        )
        self.tenant_max_slowdown = Gauge(
            "hermes_tenant_max_slowdown",
            "Worst slowdown (run time / own service time) over a tenant's last 1000 runs",
            ["tenant"],
            registry=r,
        )
        self.loop_health = LoopHealth()
        self.loop_health.register(r)
        # this process's own instrumentation: runs dropped / pending for its store, events
        from hermes_sdk.instrument.prometheus import register as register_instrumentation

        register_instrumentation(r)

    def watch_graphs(self, graphs: GraphRegistry) -> None:
        """Export ``hermes_graph_changes_total{app,node}``: changes detected in each learned
        graph's node (summed over tenants; read from the graphs at scrape time)."""
        self.registry.register(_GraphChanges(graphs))

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return bytes(generate_latest(self.registry))


class _GraphChanges(Collector):
    """Collector of ``hermes_graph_changes_total`` (see :mod:`hermes_sdk.graph.drift`)."""

    def __init__(self, graphs: GraphRegistry) -> None:
        self.graphs = graphs

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "hermes_graph_changes",
            "Behaviour changes detected in a learned graph's node (its demand or its branches)",
            labels=["app", "node"],
        )
        totals: dict[tuple[str, str], int] = {}
        for tenant in self.graphs.tenants():
            for app in self.graphs.apps(tenant):
                graph = self.graphs.get(app, tenant)
                for node, n in (graph.changes if graph is not None else {}).items():
                    totals[(app, node)] = totals.get((app, node), 0) + n
        for (app, node), n in sorted(totals.items()):
            family.add_metric([app, node], float(n))
        yield family


METRICS: Final = web.AppKey("hermes_metrics", ServerMetrics)

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
