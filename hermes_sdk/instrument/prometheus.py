"""The instrumentation counters of this process (:func:`hermes_sdk.stats`) as Prometheus metrics.

The scheduler's ``/metrics`` includes them; an app server that exposes its own Prometheus
metrics adds them with ``hermes_sdk.instrument.prometheus.register()`` (default registry) or
``register(my_registry)``. Values are read at scrape time from the active configuration without
waiting for queued runs, so a scrape never blocks: ``hermes_sdk_runs_dropped_total`` counts
completed runs refused because the queue of runs waiting for the store was full,
``hermes_sdk_run_queue_bytes`` is what that queue holds now (estimated bytes, bounded by
``hermes_sdk_run_queue_max_bytes``). Counters restart at ``configure()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hermes_sdk.instrument import runtime as _rt


class InstrumentCollector(Collector):
    """Collector of the active runtime's run and event counters (read at each scrape)."""

    def collect(self) -> Iterator[Metric]:
        """One family per counter of :class:`~.instrument_stats.InstrumentStats`."""
        c = _rt.current_runtime().counters()
        counters = (
            ("runs_learned", "Completed runs stored and learned", c.runs_completed),
            (
                "runs_failed_to_record",
                "Completed runs not stored (queue full, store error, invalid)",
                c.runs_failed_to_record,
            ),
            (
                "runs_dropped",
                "Completed runs dropped: the queue for the store was full, or see runs_unencodable",
                c.runs_dropped,
            ),
            (
                "runs_unencodable",
                "Of runs_dropped: runs the learner process's queue could not encode",
                c.runs_unencodable,
            ),
            (
                "learn_backpressure_sleeps",
                "Sleeps of 200 us that ending a run made for the learner (backpressure on)",
                c.learn_backpressure_sleeps,
            ),
            (
                "learner_process_failures",
                "Learner processes that could not start or died (the thread learner took over)",
                c.learner_process_failures,
            ),
            (
                "runs_lost_in_learner_process",
                "Completed runs sent to a learner process that died before storing them",
                c.runs_lost_in_learner_process,
            ),
            ("events_sent", "Run events delivered to the scheduler", c.events_sent),
            ("events_dropped", "Run events dropped: the event queue was full", c.events_dropped),
            ("events_lost", "Run events the scheduler did not take", c.events_lost),
        )
        for name, doc, value in counters:
            yield CounterMetricFamily(f"hermes_sdk_{name}", doc, value=value)
        gauges = (
            ("runs_pending", "Completed runs waiting for the store", c.runs_pending),
            (
                "run_queue_bytes",
                "Estimated bytes of the runs waiting for the store",
                c.pending_bytes,
            ),
            ("run_queue_peak_bytes", "Most the queue for the store held", c.peak_pending_bytes),
            ("run_queue_max_bytes", "Bound of the queue for the store", c.max_pending_bytes),
            ("events_queued", "Run events waiting to be sent", c.events_queued),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(f"hermes_sdk_{name}", doc, value=value)


def register(registry: CollectorRegistry = REGISTRY) -> InstrumentCollector:
    """Add this process's instrumentation counters to ``registry``; returns the collector."""
    collector = InstrumentCollector()
    registry.register(collector)
    return collector
