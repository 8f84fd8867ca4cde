"""Spans from instrumented runs: a unit observer that turns each run and unit into an OTel span.

Span tree: the run span (``invoke_workflow <app>``, a child of whatever OTel span is current when
the run starts, or of the enclosing run's unit for a sub-run) -> one span per top-level unit ->
one span per nested unit. Span times are the units' own ``perf_counter_ns`` readings mapped to
the run's wall clock, so exported durations equal what Hermes measures.

Attributes follow the OpenTelemetry GenAI semantic conventions where they apply
(``gen_ai.operation.name``: ``chat`` for llm units, ``execute_tool`` for tools, ``retrieval`` for
retrievers; ``gen_ai.request.model`` = the unit's backend for llm units; ``gen_ai.tool.name``;
``gen_ai.usage.input_tokens`` / ``output_tokens``) plus ``hermes.*`` attributes: app, run id,
unit, kind, backend, and the rank and predicted remaining demand Hermes computed at unit start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from hermes_sdk.instrument import observers
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.stages import NS_PER_S

if TYPE_CHECKING:
    from hermes_sdk.graph.records import RunPath

log = logging.getLogger("hermes_sdk.otel")

INSTRUMENTATION_NAME: Final = "hermes_sdk.otel"
OPERATION_BY_KIND: Final[Mapping[str, str]] = {
    "llm": "chat",
    "tool": "execute_tool",
    "retriever": "retrieval",
}
"""``gen_ai.operation.name`` per unit kind; other kinds (dnn, container, custom) get none."""
RUN_OPERATION: Final = "invoke_workflow"
"""``gen_ai.operation.name`` of a run span: one execution of an app's workflow."""

AttrValue = str | bool | int | float


def _epoch_ns(run: RunHandle, perf_ns: int) -> int:
    """Unix nanoseconds of a ``perf_counter_ns`` reading taken during ``run``."""
    return round(run.started_at * NS_PER_S) + (perf_ns - run.start_ns)


def unit_span_name(unit: UnitHandle) -> str:
    """``chat <model>``, ``execute_tool <tool>``, ``retrieval <unit>`` or the unit's name."""
    op = OPERATION_BY_KIND.get(unit.kind)
    if op is None:
        return unit.name
    if op == "chat" and unit.backend is not None:
        return f"chat {unit.backend}"
    return f"{op} {unit.name}"


def unit_attributes(unit: UnitHandle) -> dict[str, AttrValue]:
    """Attributes known when ``unit`` starts (tokens are added when it ends)."""
    run = unit.run
    attrs: dict[str, AttrValue] = {
        "hermes.app": run.app,
        "hermes.run_id": run.run_id,
        "hermes.unit": unit.name,
        "hermes.kind": unit.kind,
    }
    if run.tenant != "default":
        attrs["hermes.tenant"] = run.tenant
    op = OPERATION_BY_KIND.get(unit.kind)
    if op is not None:
        attrs["gen_ai.operation.name"] = op
    if unit.backend is not None:
        attrs["hermes.backend"] = unit.backend
        if unit.kind == "llm":
            attrs["gen_ai.request.model"] = unit.backend
    if unit.kind == "tool":
        attrs["gen_ai.tool.name"] = unit.name
    if unit.input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = unit.input_tokens
    return attrs


class SpanObserver:
    """The unit observer behind :func:`hermes_sdk.otel.instrument` (one per tracer).

    Thread-safe: runs and units may start and end on any thread. A unit whose run started
    before the observer was registered gets no span.
    """

    def __init__(self, tracer: Tracer, *, hints: bool = True) -> None:
        self.tracer = tracer
        self.hints = hints
        self._lock = threading.Lock()
        self._runs: dict[RunHandle, Span] = {}
        self._units: dict[RunHandle, dict[UnitHandle, Span]] = {}

    def run_started(self, run: RunHandle) -> None:
        """Open the run span (under the enclosing run's unit span for a sub-run)."""
        parent = None
        outer = run.outer_unit
        if outer is not None:
            with self._lock:
                outer_span = self._units.get(outer.run, {}).get(outer)
            if outer_span is not None:
                parent = trace.set_span_in_context(outer_span)
        attrs: dict[str, AttrValue] = {
            "gen_ai.operation.name": RUN_OPERATION,
            "hermes.app": run.app,
            "hermes.run_id": run.run_id,
        }
        if run.tenant != "default":
            attrs["hermes.tenant"] = run.tenant
        if run.deadline_s is not None:
            attrs["hermes.deadline_s"] = run.deadline_s
        span = self.tracer.start_span(
            f"{RUN_OPERATION} {run.app}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            start_time=_epoch_ns(run, run.start_ns),
        )
        with self._lock:
            self._runs[run] = span
            self._units[run] = {}

    def unit_started(self, unit: UnitHandle) -> None:
        """Open the unit's span under its parent unit's span, or under the run span."""
        run = unit.run
        with self._lock:
            run_span = self._runs.get(run)
            spans = self._units.get(run)
            parent_span = spans.get(unit.parent) if spans and unit.parent is not None else None
        if run_span is None or spans is None:
            return
        attrs = unit_attributes(unit)
        if self.hints:
            attrs.update(_hint_attributes(unit))
        span = self.tracer.start_span(
            unit_span_name(unit),
            context=trace.set_span_in_context(parent_span or run_span),
            kind=SpanKind.CLIENT if unit.kind in ("llm", "retriever") else SpanKind.INTERNAL,
            attributes=attrs,
            start_time=_epoch_ns(run, unit.start_ns),
        )
        with self._lock:
            if run in self._units:
                self._units[run][unit] = span
                return
        span.end(end_time=_epoch_ns(run, unit.start_ns))  # the run ended meanwhile

    def unit_ended(self, unit: UnitHandle) -> None:
        """Close the unit's span with its tokens, service seconds and outcome."""
        with self._lock:
            span = self._units.get(unit.run, {}).pop(unit, None)
        if span is not None and unit.end_ns is not None:
            _finish(span, unit, unit.end_ns)

    def run_ended(self, run: RunHandle, path: RunPath | None) -> None:
        """Close units still open (cut at the run's end, like the path) and the run span."""
        with self._lock:
            span = self._runs.pop(run, None)
            units = self._units.pop(run, {})
        end_ns = run.end_ns if run.end_ns is not None else run.start_ns
        for unit, unit_span in units.items():
            unit_span.set_attribute("hermes.cut_at_run_end", True)
            _finish(unit_span, unit, end_ns)
        if span is None:
            return
        span.set_attribute("hermes.units", len(run.units))
        if path is not None:
            span.set_attribute("hermes.stages", len(path.stages))
            span.set_attribute("hermes.service_s", sum(s.service_s for s in path.stages))
        else:
            span.set_attribute("hermes.recorded", False)
        if run.failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_epoch_ns(run, end_ns))

    def close(self) -> None:
        """End every span still open now (their runs will not be reported any more)."""
        with self._lock:
            runs, self._runs = self._runs, {}
            units, self._units = self._units, {}
        for spans in units.values():
            for span in spans.values():
                span.set_attribute("hermes.cut_at_uninstrument", True)
                span.end()
        for span in runs.values():
            span.set_attribute("hermes.cut_at_uninstrument", True)
            span.end()


def _hint_attributes(unit: UnitHandle) -> dict[str, AttrValue]:
    """``hermes.rank_s`` / ``remaining_p50_s`` / ``remaining_p95_s`` when a graph predicts them.

    A nested unit runs within its top-level unit's stage, so it shares that unit's hints
    (computed once and cached on the unit, also for :func:`hermes_sdk.current_hints`).
    """
    nested = unit.parent is not None
    try:
        hints = unit.root.hints()
    except Exception as exc:  # hints fail open; so does tracing
        log.debug("hermes: no hints for %s: %r", unit.name, exc)
        return {}
    attrs: dict[str, AttrValue] = {}
    for key, value in (
        ("hermes.rank_s", hints.rank_s),
        ("hermes.remaining_p50_s", hints.remaining_p50_s),
        ("hermes.remaining_p95_s", hints.remaining_p95_s),
        ("hermes.predicted_output_tokens", None if nested else hints.predicted_output_tokens),
    ):
        if value is not None:
            attrs[key] = value
    return attrs


def _finish(span: Span, unit: UnitHandle, end_ns: int) -> None:
    if unit.input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", unit.input_tokens)
    if unit.output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", unit.output_tokens)
    service_ns = max(end_ns - unit.start_ns - unit.wait_ns, 0)
    span.set_attribute("hermes.service_s", service_ns / NS_PER_S)
    if unit.wait_ns:
        span.set_attribute("hermes.queue_wait_s", unit.wait_ns / NS_PER_S)
    if unit.failed:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=_epoch_ns(unit.run, end_ns))


_ACTIVE: SpanObserver | None = None
_ACTIVE_LOCK = threading.Lock()


def instrument(
    tracer_provider: TracerProvider | None = None, *, hints: bool = True
) -> SpanObserver:
    """Export every instrumented run and unit as OpenTelemetry spans from now on.

    ``tracer_provider`` defaults to the global one (``opentelemetry.trace``). With ``hints``
    (default) each unit's span carries the rank and remaining-demand quantiles (seconds)
    computed from the app's learned graph when its top-level unit starts (a Monte Carlo
    estimate, about a millisecond per top-level unit, shared by nested units and reused by
    ``current_hints``; pass ``hints=False`` to skip it for apps with very short units).
    Calling it again replaces the previous exporter. Returns the observer (see
    :func:`uninstrument`).
    """
    global _ACTIVE
    from hermes_sdk import __version__

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    observer = SpanObserver(provider.get_tracer(INSTRUMENTATION_NAME, __version__), hints=hints)
    with _ACTIVE_LOCK:
        old, _ACTIVE = _ACTIVE, observer
        if old is not None:
            observers.remove_unit_observer(old)
        observers.add_unit_observer(observer)
    if old is not None:
        old.close()
    return observer


def uninstrument() -> None:
    """Stop exporting spans; spans still open end now, marked ``hermes.cut_at_uninstrument``."""
    global _ACTIVE
    with _ACTIVE_LOCK:
        old, _ACTIVE = _ACTIVE, None
        if old is not None:
            observers.remove_unit_observer(old)
    if old is not None:
        old.close()
