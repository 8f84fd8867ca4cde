"""Explicit run and unit handles: the API integrations (LangGraph callback, gateway) drive directly.

The decorators and ``hermes.run`` are thin layers over these. A handle does no I/O on the hot
path: starting and ending a unit is a ``perf_counter_ns`` and a few attribute writes, plus one
``deque.append`` per wire event when a recorder is configured. Stage formation and learning
happen once, in :meth:`RunHandle.end`.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import threading
import time
from collections.abc import Mapping
from time import perf_counter_ns
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import (
    MAX_TOKENS,
    UNIT_KINDS,
    RunPath,
    UnitKind,
    check_name,
    path_to_dict,
)
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.ranking import unit_hints
from hermes_sdk.instrument.stages import NS_PER_S, form_stages

if TYPE_CHECKING:
    from hermes_sdk.client.hints import Hints
    from hermes_sdk.graph.rank_tables import StateHints

log = logging.getLogger("hermes_sdk.instrument")

_UNIT_IDS = itertools.count(1)


class RunPrefix(NamedTuple):
    """The first ``consumed`` units of a run, all ended top-level units, and the visit counts of
    the stages they formed (never mutated); the last of them ended at ``max_end_ns`` (a
    NamedTuple: one is made per call of a sequential run, at a third of a dataclass's cost).
    Kept on the run by :mod:`hermes_sdk.instrument.start_hints`."""

    consumed: int
    visits: Mapping[str, int]
    max_end_ns: int


def _valid_tokens(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS


class UnitHandle:
    """One executing (or finished) unit of a run: times, tokens, outcome."""

    __slots__ = (
        "_hints",
        "_sent",
        "backend",
        "end_ns",
        "failed",
        "input_tokens",
        "kind",
        "name",
        "output_tokens",
        "parent",
        "root",
        "run",
        "start_ns",
        "unit_id",
        "wait_ns",
    )

    def __init__(
        self,
        run: RunHandle,
        name: str,
        kind: UnitKind,
        backend: str | None,
        parent: UnitHandle | None,
        input_tokens: int | None = None,
    ) -> None:
        self.run = run
        self.name = name
        self.kind = kind
        self.backend = backend
        self.parent = parent
        self.root: UnitHandle = self if parent is None else parent.root
        self.unit_id = 0
        self.input_tokens = input_tokens
        self.output_tokens: int | None = None
        self.failed = False
        self.end_ns: int | None = None
        self._hints: Hints | None = None
        self._sent: tuple[StateHints | None] | None = None
        """The rank tables' answer a wrapped call of this unit was sent with (its hints)."""
        self.wait_ns = 0
        self.start_ns = perf_counter_ns()

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self.end_ns is not None

    @property
    def service_s(self) -> float | None:
        """Seconds of service: wall time minus recorded waits (``None`` while running)."""
        if self.end_ns is None:
            return None
        return max(self.end_ns - self.start_ns - self.wait_ns, 0) / NS_PER_S

    def record_wait(self, seconds: float) -> None:
        """Record that ``seconds`` of this unit's wall time were spent waiting for a backend slot.

        The gateway reports it (``X-Hermes-Queue-Wait``); subtracting it from this unit and every
        enclosing unit makes the PDGraph learn service demand, not queueing delay, which depends
        on the policy and the load. Bad values are ignored; never raises.
        """
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0.0 <= seconds < 1e7
        ):
            log.debug("hermes: ignoring wait of %r s for %s", seconds, self.name)
            return
        wait_ns = int(seconds * NS_PER_S)
        unit: UnitHandle | None = self
        while unit is not None:
            unit.wait_ns += wait_ns
            unit = unit.parent

    def record(self, input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """Set this unit's token counts (the last value given wins; ``None`` keeps the field).

        Values that are not non-negative ints are ignored (logged at debug level): recording
        must never break the app.
        """
        if input_tokens is not None:
            if _valid_tokens(input_tokens):
                self.input_tokens = input_tokens
            else:
                log.debug("hermes: ignoring input_tokens=%r for %s", input_tokens, self.name)
        if output_tokens is not None:
            if _valid_tokens(output_tokens):
                self.output_tokens = output_tokens
            else:
                log.debug("hermes: ignoring output_tokens=%r for %s", output_tokens, self.name)

    def end(self, failed: bool = False) -> None:
        """Mark the unit finished now. Idempotent; never raises."""
        if self.end_ns is not None:
            return
        self.end_ns = perf_counter_ns()
        self.failed = failed
        rec = _rt.RUNTIME.recorder
        if rec is not None and self.unit_id:
            rec.emit_lazy(
                _unit_end_event, self, (self.input_tokens, self.output_tokens, self.end_ns)
            )
        if OBSERVERS:
            notify("unit_ended", self)

    def hints(self) -> Hints:
        """Scheduling hints for this unit (rank looked up lazily in the local rank tables)."""
        return unit_hints(self)

    def __repr__(self) -> str:
        return f"UnitHandle({self.name!r}, kind={self.kind!r}, run={self.run.run_id!r})"


class RunHandle:
    """One run of an app: its units, and the path they form when it ends."""

    __slots__ = (
        "active",
        "app",
        "deadline_s",
        "end_ns",
        "failed",
        "hint_prefix",
        "outer_unit",
        "path",
        "paused_s",
        "run_id",
        "start_ns",
        "started_at",
        "tenant",
        "units",
    )

    def __init__(
        self,
        app: str,
        *,
        run_id: str,
        tenant: str,
        deadline_s: float | None,
        active: bool,
        outer_unit: UnitHandle | None = None,
    ) -> None:
        self.app = app
        self.run_id = run_id
        self.tenant = tenant
        self.deadline_s = deadline_s
        self.active = active
        self.outer_unit = outer_unit
        self.paused_s = 0.0
        """Seconds this run spent paused (set by ``hermes_sdk.instrument.pauses`` on resume)."""
        self.units: list[UnitHandle] = []
        self.hint_prefix: RunPrefix | None = None
        """The hint path's cache of this run's completed stages (:mod:`~hermes_sdk.instrument.
        start_hints`); None until a wrapped call asks."""
        self.path: RunPath | None = None
        self.failed = False
        self.end_ns: int | None = None
        self.started_at = time.time()
        self.start_ns = perf_counter_ns()

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self.end_ns is not None

    @property
    def elapsed_s(self) -> float:
        """Wall seconds since the run started (until its end once ended)."""
        stop = self.end_ns if self.end_ns is not None else perf_counter_ns()
        return (stop - self.start_ns) / NS_PER_S

    def unix_time(self, ns: int) -> float:
        """Unix seconds of a ``perf_counter_ns`` reading taken during this run."""
        return self.started_at + (ns - self.start_ns) / NS_PER_S

    def start_unit(
        self,
        name: str,
        *,
        kind: UnitKind = "custom",
        backend: str | None = None,
        parent: UnitHandle | None = None,
        input_tokens: int | None = None,
    ) -> UnitHandle:
        """Start a unit of this run now; a ``parent`` makes it nested (its tokens roll up).

        Raises :class:`GraphError` for an invalid name, kind or backend (a programming error).
        """
        check_name(name, "unit name")
        if kind not in UNIT_KINDS:
            raise GraphError(f"kind must be one of {sorted(UNIT_KINDS)}, got {kind!r}")
        if backend is not None:
            check_name(backend, "backend")
        return self.open_unit(name, kind, backend, parent, input_tokens)

    def open_unit(
        self,
        name: str,
        kind: UnitKind,
        backend: str | None,
        parent: UnitHandle | None,
        input_tokens: int | None = None,
    ) -> UnitHandle:
        """:meth:`start_unit` without validation (decorators validate once, at decoration)."""
        if parent is not None and parent.run is not self:
            parent = None
        unit = UnitHandle(self, name, kind, backend, parent, input_tokens)
        if not self.active or self.end_ns is not None:
            return unit  # detached: a late unit of an ended run is neither kept nor sent
        self.units.append(unit)
        rec = _rt.RUNTIME.recorder
        if rec is not None:
            unit.unit_id = next(_UNIT_IDS)
            rec.emit_lazy(_unit_start_event, unit, input_tokens)
        if OBSERVERS:
            notify("unit_started", unit)
        return unit

    def end(self, failed: bool = False) -> RunPath | None:
        """Finish the run: form its stages, learn the path, emit ``run_end``. Never raises.

        Units still open are cut at this moment. Returns the path, or ``None`` if the run was
        disabled, already ended, or its records were invalid (logged).
        """
        if not self.active or self.end_ns is not None:
            return None
        end_ns = self.end_ns = perf_counter_ns()
        self.failed = failed
        try:
            path = RunPath(
                app=self.app,
                stages=form_stages(self.units, end_ns),
                run_id=self.run_id,
                tenant=self.tenant,
                started_at=self.started_at,
                deadline_s=self.deadline_s,
                failed=failed,
                paused_s=self.paused_s,
            )
        except Exception as exc:  # invalid records (GraphError) or a bug: never break the app
            log.warning("hermes: run %s of %s not recorded: %s", self.run_id, self.app, exc)
            path = None
        self.path = path
        outer = self.outer_unit
        if outer is not None and path is not None:
            inp = [c.input_tokens for s in path.stages for c in s.calls if c.input_tokens]
            out = [c.output_tokens for s in path.stages for c in s.calls if c.output_tokens]
            outer.record(sum(inp) if inp else None, sum(out) if out else None)
        if outer is not None:
            outer.end(failed)
        if OBSERVERS:
            notify("run_ended", self, path)
        if path is None:
            return None
        runtime = _rt.RUNTIME
        if runtime.recorder is not None:
            runtime.recorder.emit_lazy(_run_end_event, path)
        runtime.deliver(path)
        return path

    def __repr__(self) -> str:
        return f"RunHandle({self.app!r}, run_id={self.run_id!r})"


def _unit_start_event(unit: object, input_tokens: object) -> dict[str, object]:
    assert isinstance(unit, UnitHandle)
    event: dict[str, object] = {
        "type": "unit_start",
        "run_id": unit.run.run_id,
        "unit_id": str(unit.unit_id),
        "node": unit.name,
        "kind": unit.kind,
        "ts": unit.run.unix_time(unit.start_ns),
    }
    if unit.backend is not None:
        event["backend"] = unit.backend
    if input_tokens is not None:
        event["input_tokens"] = input_tokens
    if unit.parent is not None and unit.parent.unit_id:
        event["parent_id"] = str(unit.parent.unit_id)  # nested: does not move the run's node
    return event


def _unit_end_event(unit: object, at_end: object) -> dict[str, object]:
    assert isinstance(unit, UnitHandle) and isinstance(at_end, tuple)
    input_tokens, output_tokens, end_ns = at_end
    event: dict[str, object] = {
        "type": "unit_end",
        "run_id": unit.run.run_id,
        "unit_id": str(unit.unit_id),
        "service_s": max(end_ns - unit.start_ns - unit.wait_ns, 0) / NS_PER_S,
        "failed": unit.failed,
        "ts": unit.run.unix_time(end_ns),
    }
    if input_tokens is not None:
        event["input_tokens"] = input_tokens
    if output_tokens is not None:
        event["output_tokens"] = output_tokens
    return event


def _run_end_event(path: object, _unused: object) -> dict[str, object]:
    assert isinstance(path, RunPath)
    return {
        "type": "run_end",
        "run_id": path.run_id,
        "failed": path.failed,
        "path": path_to_dict(path),
    }


# --- the current run and unit (re-exported by hermes_sdk.instrument._context) -------------------

CURRENT_RUN: contextvars.ContextVar[RunHandle | None] = contextvars.ContextVar(
    "hermes_run", default=None
)
"""The run the current code belongs to (``None`` outside any ``hermes.run``)."""
CURRENT_UNIT: contextvars.ContextVar[UnitHandle | None] = contextvars.ContextVar(
    "hermes_unit", default=None
)
"""The innermost unit now executing in this context (``None`` between units)."""


# --- unit observers (the public seam is hermes_sdk.instrument.observers) ------------------------


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
_OBSERVERS_LOCK = threading.Lock()


def add_unit_observer(observer: UnitObserver) -> None:
    """Register ``observer`` for every run and unit from now on (no-op if registered)."""
    global OBSERVERS
    with _OBSERVERS_LOCK:
        if observer not in OBSERVERS:
            OBSERVERS = (*OBSERVERS, observer)


def remove_unit_observer(observer: UnitObserver) -> None:
    """Stop notifying ``observer`` (no-op if it was not registered)."""
    global OBSERVERS
    with _OBSERVERS_LOCK:
        OBSERVERS = tuple(o for o in OBSERVERS if o is not observer)


ObserverEvent = Literal["run_started", "unit_started", "unit_ended", "run_ended"]
"""The :class:`UnitObserver` method an event calls."""


def notify(event: ObserverEvent, *args: object) -> None:
    """Call ``event`` on every observer with ``args``; an observer's exception is logged, not
    raised (an exporter bug never breaks the app)."""
    for obs in OBSERVERS:
        try:
            getattr(obs, event)(*args)
        except Exception:
            log.exception("hermes: unit observer %r failed in %s", obs, event)
