"""Instrumentation: runs, units, decorators, hints and the fail-open event recorder.

Users import these names from ``hermes_sdk`` directly (see docs/architecture.md).
"""

from hermes_sdk.instrument._context import context_executor, wrap_context
from hermes_sdk.instrument.accessors import flush, graph, registry, stats
from hermes_sdk.instrument.decorators import llm, retriever, tool, unit
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.instrument_stats import InstrumentStats
from hermes_sdk.instrument.observers import UnitObserver, add_unit_observer, remove_unit_observer
from hermes_sdk.instrument.prewarm_hooks import (
    PrewarmNotice,
    dispatch_prewarm,
    on_prewarm,
    remove_prewarm,
)
from hermes_sdk.instrument.recorder import EventSink, ListSink, Recorder, RecorderStats
from hermes_sdk.instrument.runtime import configure
from hermes_sdk.instrument.scope import RunScope, current_hints, current_run, record, run, start_run

__all__ = [
    "EventSink",
    "InstrumentStats",
    "ListSink",
    "PrewarmNotice",
    "Recorder",
    "RecorderStats",
    "RunHandle",
    "RunScope",
    "UnitHandle",
    "UnitObserver",
    "add_unit_observer",
    "configure",
    "context_executor",
    "current_hints",
    "current_run",
    "dispatch_prewarm",
    "flush",
    "graph",
    "llm",
    "on_prewarm",
    "record",
    "registry",
    "remove_prewarm",
    "remove_unit_observer",
    "retriever",
    "run",
    "start_run",
    "stats",
    "tool",
    "unit",
    "wrap_context",
]
