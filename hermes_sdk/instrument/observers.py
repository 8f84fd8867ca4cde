"""Unit observers: a seam for exporters (OpenTelemetry) to see runs and units as they happen.

An observer is told when a run starts, a unit starts, a unit ends and a run ends, synchronously
on the thread that runs the instrumented code, so it must be quick. Its exceptions are logged
and swallowed: an exporter bug never breaks the app. With no observer registered the hot path
pays one module-attribute read and a falsy check per event.

The registry lives with the handles it reports on (:mod:`hermes_sdk.instrument.handles`), so
imports run one way; this module is its public face.
"""

from __future__ import annotations

from hermes_sdk.instrument import handles as _handles
from hermes_sdk.instrument.handles import UnitObserver, add_unit_observer, remove_unit_observer

__all__ = ["OBSERVERS", "UnitObserver", "add_unit_observer", "remove_unit_observer"]

OBSERVERS: tuple[UnitObserver, ...]
"""Registered observers (read through to :data:`hermes_sdk.instrument.handles.OBSERVERS`)."""


def __getattr__(name: str) -> object:
    if name == "OBSERVERS":
        return _handles.OBSERVERS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
