"""Run assembly: spans arrive in any order across requests; runs come out when they end.

A :class:`TraceAssembler` buffers the spans of each open trace per tenant. A run is complete when
its root arrives (a span with no parent, or with ``root_span_name`` set, a span of that name), or
when its trace has been idle for ``idle_timeout_s`` (learned from what arrived, as a failed run).
Spans of a finished trace that arrive later are ignored (``late``), so a run is learned once.

Memory is bounded: a trace over ``max_spans_per_trace`` spans is dropped (``trace_too_large``;
its later spans are counted, not kept, until its root or the idle timeout closes it), and past
``max_open_traces`` the oldest open trace is closed early.

For live ranking the assembler also reports, in trace mode, each trace's *provisional* top-level
units as they arrive (spans whose parent has not arrived, since OTel exports a span when it ends
and a parent ends after its children): see :class:`LiveUnit`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from hermes_sdk.graph.records import RunPath
from hermes_sdk.otlp.mapping import SpanMapping
from hermes_sdk.otlp.paths import LEAF_KINDS, RunOutcome, run_path
from hermes_sdk.otlp.spans import NS_PER_S, SpanRecord

DONE_MEMORY: Final = 100_000
"""Finished traces remembered (per assembler) so late spans are recognised as late."""


@dataclass(frozen=True, slots=True)
class LiveUnit:
    """A provisional top-level unit of a running trace (seconds; tokens of the span itself)."""

    run_id: str
    unit_id: str
    node: str
    kind: str
    backend: str | None
    service_s: float
    input_tokens: int | None
    output_tokens: int | None
    failed: bool


@dataclass(slots=True)
class AssemblyOutput:
    """What one call of :meth:`TraceAssembler.add` or :meth:`~TraceAssembler.expire` produced."""

    paths: list[RunPath] = field(default_factory=list)
    started: list[tuple[str, str]] = field(default_factory=list)
    """(run_id, app) of traces seen for the first time (trace mode)."""
    live: list[LiveUnit] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)
    """(tenant, run_id) of runs closed without a path (dropped, empty): live state ends too."""


@dataclass(slots=True)
class AssemblyStats:
    """Counters since the assembler was created."""

    spans_received: int = 0
    spans_ignored: dict[str, int] = field(default_factory=dict)
    runs_learned: int = 0
    runs_timed_out: int = 0
    runs_not_learned: dict[str, int] = field(default_factory=dict)
    apps: dict[str, int] = field(default_factory=dict)
    """Runs learned per app."""

    def ignore(self, reason: str, n: int = 1) -> None:
        """Count ``n`` spans ignored for ``reason``."""
        if n:
            self.spans_ignored[reason] = self.spans_ignored.get(reason, 0) + n


@dataclass(slots=True)
class _Trace:
    trace_id: str
    spans: dict[str, SpanRecord] = field(default_factory=dict)
    last_seen_s: float = 0.0
    live_started: bool = False
    live_emitted: set[str] = field(default_factory=set)
    dropped: int = 0
    """Spans dropped since the trace went over the span limit (0: not over)."""


class TraceAssembler:
    """Owner of the open traces of every tenant; not thread-safe (one event loop or one CLI)."""

    def __init__(
        self,
        mapping: SpanMapping,
        *,
        live: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mapping = mapping
        self.live = live and mapping.root_span_name is None
        self._clock = clock
        self._open: OrderedDict[tuple[str, str], _Trace] = OrderedDict()
        self._done: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.stats = AssemblyStats()

    @property
    def open_traces(self) -> int:
        """Traces buffered and waiting for their root."""
        return len(self._open)

    def add(self, tenant: str, spans: Iterable[SpanRecord]) -> AssemblyOutput:
        """Buffer ``spans`` of ``tenant``; completed runs (and live updates) come back."""
        out = AssemblyOutput()
        now_s = self._clock()
        by_trace: dict[str, list[SpanRecord]] = {}
        for s in spans:
            by_trace.setdefault(s.trace_id, []).append(s)
        for trace_id, batch in by_trace.items():
            self.stats.spans_received += len(batch)
            key = (tenant, trace_id)
            if key in self._done:
                self.stats.ignore("late", len(batch))
                continue
            trace = self._open.get(key)
            if trace is None:
                while len(self._open) >= self.mapping.max_open_traces:
                    (old_tenant, _), oldest = next(iter(self._open.items()))
                    self._close(old_tenant, oldest, None, out, timed_out=True)
                trace = self._open[key] = _Trace(trace_id)
            else:
                self._open.move_to_end(key)
            trace.last_seen_s = now_s
            self._take(tenant, trace, batch, out)
        return out

    def expire(self, *, now_s: float | None = None) -> AssemblyOutput:
        """Close every trace idle for ``idle_timeout_s`` (learned from what arrived)."""
        out = AssemblyOutput()
        now_s = self._clock() if now_s is None else now_s
        horizon = now_s - self.mapping.idle_timeout_s
        while self._open:
            (tenant, _), trace = next(iter(self._open.items()))
            if trace.last_seen_s > horizon:
                break  # ordered by last activity: the rest are newer
            self._close(tenant, trace, None, out, timed_out=True)
        return out

    def flush(self) -> AssemblyOutput:
        """Close every open trace now (end of a file, shutdown)."""
        return self.expire(now_s=float("inf"))

    # --- internals -------------------------------------------------------------------------

    def _take(
        self, tenant: str, trace: _Trace, batch: list[SpanRecord], out: AssemblyOutput
    ) -> None:
        limit = self.mapping.max_spans_per_trace
        if trace.dropped or len(trace.spans) + len(batch) > limit:
            if not trace.dropped and self.live and trace.live_started:
                out.ended.append((tenant, trace.trace_id))
            trace.dropped += len(trace.spans) + len(batch)
            self.stats.ignore("trace_too_large", len(trace.spans) + len(batch))
            trace.spans.clear()
            if any(s.parent_id is None for s in batch):  # its root: the trace is over
                self._finish(tenant, trace)
                self.stats.runs_not_learned["trace_too_large"] = (
                    self.stats.runs_not_learned.get("trace_too_large", 0) + 1
                )
            return
        for s in batch:
            if s.span_id in trace.spans:
                self.stats.ignore("duplicate_span_id")
                continue
            trace.spans[s.span_id] = s
        root_name = self.mapping.root_span_name
        if root_name is None:
            root = next((s for s in batch if s.parent_id is None), None)
            if root is not None:
                self._close(tenant, trace, root, out, timed_out=False)
            elif self.live:
                self._live(trace, batch, out)
            return
        for s in batch:
            if s.name == root_name and s.span_id in trace.spans:
                self._close_subtree(tenant, trace, s, out)
        if any(s.parent_id is None for s in batch):  # the trace ended: the rest is outside
            self.stats.ignore("outside_root_span", len(trace.spans))
            trace.spans.clear()
            self._finish(tenant, trace)

    def _finish(self, tenant: str, trace: _Trace) -> None:
        key = (tenant, trace.trace_id)
        self._open.pop(key, None)
        self._done[key] = None
        if len(self._done) > DONE_MEMORY:
            self._done.popitem(last=False)

    def _record(self, tenant: str, outcome: RunOutcome, run_id: str, out: AssemblyOutput) -> None:
        for reason, n in outcome.ignored.items():
            self.stats.ignore(reason, n)
        if outcome.path is None:
            reason = outcome.reason or "no_units"
            self.stats.runs_not_learned[reason] = self.stats.runs_not_learned.get(reason, 0) + 1
            out.ended.append((tenant, run_id))
            return
        self.stats.runs_learned += 1
        app = outcome.path.app
        self.stats.apps[app] = self.stats.apps.get(app, 0) + 1
        out.paths.append(outcome.path)

    def _close(
        self,
        tenant: str,
        trace: _Trace,
        root: SpanRecord | None,
        out: AssemblyOutput,
        *,
        timed_out: bool,
    ) -> None:
        """The trace is a run: learn it (trace mode), or drop what no root span claimed."""
        self._finish(tenant, trace)
        if trace.dropped:
            self.stats.runs_not_learned["trace_too_large"] = (
                self.stats.runs_not_learned.get("trace_too_large", 0) + 1
            )
            return
        if self.mapping.root_span_name is not None:
            self.stats.ignore("outside_root_span", len(trace.spans))
            return
        if timed_out:
            self.stats.runs_timed_out += 1
        outcome = run_path(
            tenant,
            trace.trace_id,
            root,
            list(trace.spans.values()),
            self.mapping,
            timed_out=timed_out,
        )
        self._record(tenant, outcome, trace.trace_id, out)

    def _close_subtree(
        self, tenant: str, trace: _Trace, root: SpanRecord, out: AssemblyOutput
    ) -> None:
        """A configured root span arrived: its subtree (as buffered) is one run."""
        children: dict[str, list[SpanRecord]] = {}
        for s in trace.spans.values():
            if s.parent_id is not None:
                children.setdefault(s.parent_id, []).append(s)
        members, todo = [], [root]
        while todo:
            s = todo.pop()
            members.append(s)
            todo.extend(children.get(s.span_id, ()))
        for s in members:
            trace.spans.pop(s.span_id, None)
        run_id = f"{trace.trace_id}:{root.span_id}"
        self._record(tenant, run_path(tenant, run_id, root, members, self.mapping), run_id, out)

    def _live(self, trace: _Trace, batch: list[SpanRecord], out: AssemblyOutput) -> None:
        """Report the batch's provisional top-level units (parent not arrived yet)."""
        if not trace.live_started:
            app = next((s.app for s in batch if s.app), None)
            if app is None:
                return
            trace.live_started = True
            out.started.append((trace.trace_id, app))
        holds: set[str] = set()
        for s in batch:
            if self.mapping.classify(s) is None:
                continue
            parent_id = s.parent_id
            while parent_id is not None and parent_id in trace.spans and parent_id not in holds:
                holds.add(parent_id)
                parent_id = trace.spans[parent_id].parent_id
        for s in sorted(batch, key=lambda s: s.start_ns):
            if s.parent_id in trace.spans or s.span_id in trace.live_emitted:
                continue
            cls = self.mapping.classify(s)
            if cls is None and s.span_id not in holds:
                continue
            trace.live_emitted.add(s.span_id)
            out.live.append(
                LiveUnit(
                    run_id=trace.trace_id,
                    unit_id=s.span_id,
                    node=self.mapping.unit_name(s),
                    kind=cls if cls is not None and cls in LEAF_KINDS else "custom",
                    backend=self.mapping.backend(s),
                    service_s=(s.end_ns - s.start_ns) / NS_PER_S,
                    input_tokens=s.input_tokens,
                    output_tokens=s.output_tokens,
                    failed=s.failed,
                )
            )
