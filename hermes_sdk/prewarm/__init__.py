"""Backend prewarm from predicted demand: forecast, decision rule, keep-alive, adapters.

``PrewarmPlanner`` decides (clock-agnostic), ``PrewarmRuntime`` runs it in real time and hands its
signals to adapters implementing ``PrewarmAdapter``: ``WebhookAdapter``, ``SubprocessPoolAdapter``,
``CallbackAdapter`` (client ``hermes.on_prewarm`` callbacks); ``replay`` drives it in virtual time
over cold-start backends (the simulator adapter).
"""

from hermes_sdk.prewarm.adapters import PrewarmAdapter, deliver
from hermes_sdk.prewarm.callbacks import CallbackAdapter
from hermes_sdk.prewarm.forecast import need_probability, time_to_backend, times_to_backends
from hermes_sdk.prewarm.keepalive import ColdStartSketch, IdleHistogram, KeepAliveConfig
from hermes_sdk.prewarm.ledger import BackendLedger, PrewarmMetrics
from hermes_sdk.prewarm.listener import PrewarmListener
from hermes_sdk.prewarm.planner import Decision, PrewarmConfig, PrewarmPlanner, PrewarmSignal
from hermes_sdk.prewarm.replay import ReplayResult, replay
from hermes_sdk.prewarm.runtime import PrewarmRuntime
from hermes_sdk.prewarm.subprocess_pool import ProcessSpec, SubprocessPoolAdapter
from hermes_sdk.prewarm.webhook import WebhookAdapter

__all__ = [
    "BackendLedger",
    "CallbackAdapter",
    "ColdStartSketch",
    "Decision",
    "IdleHistogram",
    "KeepAliveConfig",
    "PrewarmAdapter",
    "PrewarmConfig",
    "PrewarmListener",
    "PrewarmMetrics",
    "PrewarmPlanner",
    "PrewarmRuntime",
    "PrewarmSignal",
    "ProcessSpec",
    "ReplayResult",
    "SubprocessPoolAdapter",
    "WebhookAdapter",
    "deliver",
    "need_probability",
    "replay",
    "time_to_backend",
    "times_to_backends",
]
