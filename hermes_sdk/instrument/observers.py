"""Unit observers: a seam for exporters (OpenTelemetry) to see runs and units as they happen.

An observer is told when a run starts, a unit starts, a unit ends and a run ends, synchronously
on the thread that runs the instrumented code, so it must be quick. Its exceptions are logged
and swallowed: an exporter bug never breaks the app. With no observer registered the hot path
pays one module-attribute read and a falsy check per event.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hermes_sdk.graph.records import RunPath
    from hermes_sdk.instrument.handles import RunHandle, UnitHandle

log = logging.getLogger("hermes_sdk.instrument")


class UnitObserver(Protocol):
    """Receives the lifecycle of instrumented runs and units (all four methods required)."""

    def run_started(self, run: RunHandle) -> None:
        """A run started (``run.outer_unit`` is set when it is a sub-run of another run)."""
        ...

    def unit_started(self, unit: UnitHandle) -> None:
        """A unit of an active run started (``unit.parent`` is set when it is nested)."""
        ...

    def unit_ended(self, unit: UnitHandle) -> None:
        """A unit ended (tokens and ``failed`` are final); may be a unit never announced."""
        ...

    def run_ended(self, run: RunHandle, path: RunPath | None) -> None:
        """A run ended; ``path`` is None when its records were invalid. Open units are cut."""
        ...


OBSERVERS: tuple[UnitObserver, ...] = ()
"""Registered observers; replaced (never mutated) so readers need no lock."""
_LOCK = threading.Lock()


def add_unit_observer(observer: UnitObserver) -> None:
    """Register ``observer`` for every run and unit from now on (no-op if registered)."""
    global OBSERVERS
    with _LOCK:
        if observer not in OBSERVERS:
            OBSERVERS = (*OBSERVERS, observer)


def remove_unit_observer(observer: UnitObserver) -> None:
    """Stop notifying ``observer`` (no-op if it was not registered)."""
    global OBSERVERS
    with _LOCK:
        OBSERVERS = tuple(o for o in OBSERVERS if o is not observer)


def run_started(run: RunHandle) -> None:
    """Tell every observer that ``run`` started."""
    for obs in OBSERVERS:
        try:
            obs.run_started(run)
        except Exception:
            log.exception("hermes: unit observer %r failed on run start", obs)


def unit_started(unit: UnitHandle) -> None:
    """Tell every observer that ``unit`` started."""
    for obs in OBSERVERS:
        try:
            obs.unit_started(unit)
        except Exception:
            log.exception("hermes: unit observer %r failed on unit start", obs)


def unit_ended(unit: UnitHandle) -> None:
    """Tell every observer that ``unit`` ended."""
    for obs in OBSERVERS:
        try:
            obs.unit_ended(unit)
        except Exception:
            log.exception("hermes: unit observer %r failed on unit end", obs)


def run_ended(run: RunHandle, path: RunPath | None) -> None:
    """Tell every observer that ``run`` ended."""
    for obs in OBSERVERS:
        try:
            obs.run_ended(run, path)
        except Exception:
            log.exception("hermes: unit observer %r failed on run end", obs)
