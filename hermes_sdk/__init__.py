"""Hermes SDK: make LLM applications finish sooner on shared serving backends.

The public API lives here and only here; every other module is an implementation detail.
"""

from hermes_sdk.errors import (
    ConfigError,
    GraphError,
    HermesError,
    InvalidRequest,
    SchedulerUnavailable,
    StoreError,
)
from hermes_sdk.graph.records import END, START, Call, RunPath, RunState, Stage, UnitKind

__version__ = "0.1.0.dev0"

__all__ = [
    "END",
    "START",
    "Call",
    "ConfigError",
    "GraphError",
    "HermesError",
    "InvalidRequest",
    "RunPath",
    "RunState",
    "SchedulerUnavailable",
    "Stage",
    "StoreError",
    "UnitKind",
    "__version__",
]
