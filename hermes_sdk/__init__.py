"""Hermes SDK: make LLM applications finish sooner on shared serving backends.

The public API lives here and only here; every other module is an implementation detail.
"""

from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.errors import (
    ConfigError,
    GraphError,
    HermesError,
    InvalidRequest,
    SchedulerUnavailable,
    StoreError,
)
from hermes_sdk.graph import GraphRegistry, PDGraph
from hermes_sdk.graph.records import END, START, Call, RunPath, RunState, Stage, UnitKind
from hermes_sdk.instrument import (
    RunHandle,
    UnitHandle,
    configure,
    context_executor,
    current_hints,
    flush,
    graph,
    llm,
    on_prewarm,
    record,
    retriever,
    run,
    start_run,
    stats,
    tool,
    unit,
    wrap_context,
)
from hermes_sdk.instrument.model_clients import wrap
from hermes_sdk.policy import GittinsPolicy, LSTFPolicy, gittins_index, make_policy
from hermes_sdk.store import Store, open_store

__version__ = "0.1.0.dev0"

__all__ = [
    "END",
    "START",
    "Call",
    "ConfigError",
    "GittinsPolicy",
    "GraphError",
    "GraphRegistry",
    "HermesError",
    "InvalidRequest",
    "LSTFPolicy",
    "PDGraph",
    "RunHandle",
    "RunPath",
    "RunState",
    "SchedulerUnavailable",
    "Stage",
    "Store",
    "StoreError",
    "UnitHandle",
    "UnitKind",
    "__version__",
    "configure",
    "context_executor",
    "current_hints",
    "flush",
    "gittins_index",
    "graph",
    "llm",
    "make_policy",
    "on_prewarm",
    "open_store",
    "openai_kwargs",
    "record",
    "retriever",
    "run",
    "start_run",
    "stats",
    "tool",
    "unit",
    "wrap",
    "wrap_context",
]
