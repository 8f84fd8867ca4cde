"""Backend prewarm from predicted demand: forecast, decision rule, keep-alive, adapters."""

from hermes_sdk.prewarm.forecast import need_probability, time_to_backend, times_to_backends
from hermes_sdk.prewarm.keepalive import ColdStartSketch, IdleHistogram, KeepAliveConfig
from hermes_sdk.prewarm.ledger import BackendLedger, PrewarmMetrics
from hermes_sdk.prewarm.planner import Decision, PrewarmConfig, PrewarmPlanner, PrewarmSignal

__all__ = [
    "BackendLedger",
    "ColdStartSketch",
    "Decision",
    "IdleHistogram",
    "KeepAliveConfig",
    "PrewarmConfig",
    "PrewarmMetrics",
    "PrewarmPlanner",
    "PrewarmSignal",
    "need_probability",
    "time_to_backend",
    "times_to_backends",
]
