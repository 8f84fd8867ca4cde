"""One run's spans -> its :class:`RunPath`, by the rules of :mod:`hermes_sdk.otlp.mapping`.

Stages are formed by :func:`hermes_sdk.instrument.stages.form_stages`, the rule every Hermes
producer shares (top-level units overlapping in time form one stage; nested units' tokens roll up
to their top-level unit), so a traced run and a decorated run of the same app learn one graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import RunPath, UnitKind
from hermes_sdk.instrument.stages import UnitRecord, form_stages
from hermes_sdk.otlp.mapping import SpanClass, SpanMapping
from hermes_sdk.otlp.spans import NS_PER_S, SpanRecord

LEAF_KINDS = frozenset({"llm", "tool", "retriever"})


@dataclass(slots=True)
class SpanUnit:
    """A span as a unit record for stage formation (times: unix ns; no queue wait known)."""

    name: str
    kind: UnitKind
    backend: str | None
    start_ns: int
    end_ns: int | None
    failed: bool
    input_tokens: int | None
    output_tokens: int | None
    parent: SpanUnit | None = None
    wait_ns: int = 0

    @property
    def root(self) -> UnitRecord:
        """The top-level unit this one rolls up into (itself when top-level)."""
        return self if self.parent is None else self.parent


@dataclass(slots=True)
class RunOutcome:
    """A run's path (None when nothing in it is a unit), and spans ignored by reason."""

    path: RunPath | None
    ignored: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    """Why no path: ``no_units``, ``no_app`` or ``invalid_run``."""


def _unit_kind(cls: SpanClass | None) -> UnitKind:
    return "custom" if cls is None or cls == "step" else cls


def _has_tokens(span: SpanRecord) -> bool:
    return span.input_tokens is not None or span.output_tokens is not None


class _RunTree:
    """Parent/child index over one run's spans, with each span's class."""

    def __init__(self, spans: Iterable[SpanRecord], mapping: SpanMapping) -> None:
        self.mapping = mapping
        self.by_id: dict[str, SpanRecord] = {}
        self.children: dict[str | None, list[SpanRecord]] = {}
        self.cls: dict[str, SpanClass | None] = {}
        for s in spans:
            self.by_id[s.span_id] = s
            self.cls[s.span_id] = mapping.classify(s)
        for s in self.by_id.values():
            parent = s.parent_id if s.parent_id in self.by_id else None
            self.children.setdefault(parent, []).append(s)
        self.holds: set[str] = set()
        """Spans with a classified descendant."""
        for sid, cls in self.cls.items():
            if cls is None:
                continue
            parent_id = self.by_id[sid].parent_id
            while parent_id is not None and parent_id in self.by_id and parent_id not in self.holds:
                self.holds.add(parent_id)
                parent_id = self.by_id[parent_id].parent_id

    def subtree_size(self, span: SpanRecord) -> int:
        n, todo = 0, [span]
        while todo:
            s = todo.pop()
            n += 1
            todo.extend(self.children.get(s.span_id, ()))
        return n

    def top_unit(self, span: SpanRecord) -> list[SpanUnit]:
        """``span`` as a top-level unit followed by the nested units that roll up into it."""
        m = self.mapping
        top = SpanUnit(
            name=m.unit_name(span),
            kind=_unit_kind(self.cls[span.span_id]),
            backend=m.backend(span),
            start_ns=span.start_ns,
            end_ns=span.end_ns,
            failed=span.failed,
            input_tokens=span.input_tokens,
            output_tokens=span.output_tokens,
        )
        out = [top]
        nested_kinds: set[UnitKind] = set()
        todo = [(c, _has_tokens(span)) for c in self.children.get(span.span_id, ())]
        while todo:
            s, counted = todo.pop()
            cls = self.cls[s.span_id]
            own_tokens = not counted and _has_tokens(s)
            if cls in LEAF_KINDS or own_tokens:
                kind = _unit_kind(cls)
                nested_kinds.add(kind)
                out.append(
                    SpanUnit(
                        name=m.unit_name(s),
                        kind=kind,
                        backend=m.backend(s),
                        start_ns=s.start_ns,
                        end_ns=s.end_ns,
                        failed=s.failed,
                        input_tokens=s.input_tokens if own_tokens else None,
                        output_tokens=s.output_tokens if own_tokens else None,
                        parent=top,
                    )
                )
            todo.extend((c, counted or own_tokens) for c in self.children.get(s.span_id, ()))
        if top.kind == "custom" and nested_kinds in ({"tool"}, {"retriever"}):
            top.kind = "tool" if nested_kinds == {"tool"} else "retriever"
        return out


def run_path(
    tenant: str,
    run_id: str,
    root: SpanRecord | None,
    spans: Sequence[SpanRecord],
    mapping: SpanMapping,
    *,
    timed_out: bool = False,
) -> RunOutcome:
    """The path of one run: ``spans`` (root included, if it arrived) under ``root``.

    Without a root (a trace whose root never arrived) the top-level units are the classified
    spans whose parent is missing, and the run is learned as failed (its end is unknown).
    """
    tree = _RunTree(spans, mapping)
    ignored: dict[str, int] = {}
    if root is not None:
        tops = tree.children.get(root.span_id, [])
        # the root's own parent may be another span of the trace (configured root spans)
        top_level = list(tops)
    else:
        top_level = list(tree.children.get(None, []))
    units: list[SpanUnit] = []
    for span in top_level:
        if tree.cls[span.span_id] is not None or span.span_id in tree.holds:
            units.extend(tree.top_unit(span))
        else:
            ignored["not_a_unit"] = ignored.get("not_a_unit", 0) + tree.subtree_size(span)
    if not units and root is not None and tree.cls[root.span_id] in LEAF_KINDS:
        units = tree.top_unit(root)  # a single call traced on its own
    app = root.app if root is not None and root.app else next((s.app for s in spans if s.app), None)
    if not units:
        return RunOutcome(None, ignored, "no_units")
    if app is None:
        return RunOutcome(None, ignored, "no_app")
    end_ns = root.end_ns if root is not None else max(s.end_ns for s in spans)
    start_ns = root.start_ns if root is not None else min(u.start_ns for u in units)
    try:
        stages = form_stages(units, end_ns)
        path = RunPath(
            app=app,
            stages=stages,
            run_id=run_id,
            tenant=tenant,
            started_at=start_ns / NS_PER_S,
            failed=timed_out or (root is not None and root.failed),
        )
    except GraphError:
        return RunOutcome(None, ignored, "invalid_run")
    return RunOutcome(path, ignored)
