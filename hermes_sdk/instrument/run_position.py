"""A run's position between stages (node and visit counts), for the hint path.

:func:`hermes_sdk.instrument.ranking.run_state` needs only the node names of the stages a run
has completed, not the :class:`~hermes_sdk.graph.records.Stage` records. Forming and validating
those records (:func:`~hermes_sdk.instrument.stages.form_stages`) on every hint cost ~15 us; the
fast path here groups the completed top-level units by the same rule (sorted by start, transitive
overlap) and keeps only the names. It is exact: where ``form_stages`` could reject the records
(nested units whose tokens roll up, a call or stage longer than ``MAX_SERVICE_S``, a fan-out past
``MAX_WIDTH``, an invalid name, kind, backend or token count) it returns None and the caller falls
back to ``form_stages``, so the state is always the one the stages give (tested property-based).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import (
    END,
    MAX_SERVICE_S,
    MAX_TOKENS,
    MAX_WIDTH,
    START,
    UNIT_KINDS,
    RunState,
    check_name,
)
from hermes_sdk.instrument.stages import NS_PER_S, UnitRecord, composite_name, form_stages

_SAFE_NS = int(MAX_SERVICE_S * NS_PER_S) // 2
"""Calls and stages shorter than this (ns) are far inside ``MAX_SERVICE_S`` (no rounding edge)."""
_MAX_KNOWN = 4096
_known_names: dict[str, bool] = {}
"""Name -> whether it is a valid stage node / backend (``check_name``, not START/END); bounded."""


def _valid_name(name: str) -> bool:
    ok = _known_names.get(name)
    if ok is None:
        try:
            check_name(name, "name")
            ok = name not in (START, END)
        except GraphError:
            ok = False
        if len(_known_names) >= _MAX_KNOWN:
            _known_names.clear()
        _known_names[name] = ok
    return ok


def _valid_tokens(tokens: int | None) -> bool:
    return tokens is None or (type(tokens) is int and 0 <= tokens <= MAX_TOKENS)


def stage_nodes(done: Sequence[UnitRecord]) -> list[str] | None:
    """Node names of the stages ``form_stages(done, ...)`` forms, in order, for ``done`` units
    that have all ended; None when ``form_stages`` itself must decide (see the module doc)."""
    nodes: list[str] = []
    name = ""
    names: set[str] | None = None  # the stage's names once it has two different ones
    width = 0
    group_start = group_end = 0
    for u in sorted(done, key=_START_NS) if len(done) > 1 else done:
        end = u.end_ns
        start = u.start_ns
        backend = u.backend
        if (
            u.root is not u
            or end is None
            or end - start >= _SAFE_NS
            or u.kind not in UNIT_KINDS
            or (backend is not None and not _valid_name(backend))
            or not _valid_tokens(u.input_tokens)
            or not _valid_tokens(u.output_tokens)
        ):
            return None
        if width and start < group_end:
            if names is not None:
                names.add(u.name)
            elif u.name != name:
                names = {name, u.name}
            width += 1
            if end > group_end:
                group_end = end
            continue
        if width:
            node = _close(name, names, width, group_end - group_start)
            if node is None:
                return None
            nodes.append(node)
        name = u.name
        names = None
        width = 1
        group_start, group_end = start, end
    if width:
        node = _close(name, names, width, group_end - group_start)
        if node is None:
            return None
        nodes.append(node)
    return nodes


_START_NS = attrgetter("start_ns")


def _close(name: str, names: set[str] | None, width: int, span_ns: int) -> str | None:
    """The node of a stage of ``width`` calls of ``name`` (or of ``names`` when they differ),
    lasting ``span_ns``; None if ``form_stages`` could reject it."""
    if width > MAX_WIDTH or span_ns >= _SAFE_NS:
        return None
    node = name if names is None else composite_name(names)
    return node if _valid_name(node) else None


def completed_nodes(done: Sequence[UnitRecord], now_ns: int) -> list[str]:
    """The nodes of ``form_stages(done, now_ns)``, in order, the fast way when it is exact.

    Raises what ``form_stages`` raises (:class:`GraphError` for invalid records).
    """
    nodes = stage_nodes(done)
    if nodes is None:
        return [stage.node for stage in form_stages(done, now_ns)]
    return nodes


def visit_counts(nodes: list[str], extra: str | None = None) -> tuple[tuple[str, int], ...]:
    """``RunState.visits`` of a run that entered ``nodes`` (and then ``extra``), sorted."""
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node] = counts.get(node, 0) + 1
    if extra is not None:
        counts[extra] = counts.get(extra, 0) + 1
    return tuple(sorted(counts.items()))


def state_after(done: Sequence[UnitRecord], now_ns: int) -> RunState:
    """``RunState.after(form_stages(done, now_ns))``, the fast way when it is exact."""
    nodes = completed_nodes(done, now_ns)
    if not nodes:
        return RunState()
    return RunState(node=nodes[-1], visits=visit_counts(nodes))
