"""Hints for a running unit, with a rank looked up locally in the app's rank tables.

A Gittins index depends only on the run's own state, so the client can rank itself with no
service: the same per-state tables as the server's (:mod:`hermes_sdk.graph.rank_tables`) give
``rank_s = 1 / gittins_index`` and the remaining-demand quantiles with a lookup, no Monte Carlo
on the app's call path. This runs only when hints are asked for (never on the decorator hot
path), is cached per unit, and fails open to ``rank_s=None``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from time import perf_counter_ns
from typing import Protocol

from hermes_sdk.client.hints import Hints
from hermes_sdk.graph.rank_tables import RankTables
from hermes_sdk.graph.records import RunState
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.run_position import completed_nodes, visit_counts
from hermes_sdk.instrument.stages import NS_PER_S, UnitRecord

log = logging.getLogger("hermes_sdk.instrument")


class RunView(Protocol):
    """What ranking reads of a run (:class:`~hermes_sdk.instrument.handles.RunHandle`)."""

    @property
    def app(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def deadline_s(self) -> float | None: ...
    @property
    def units(self) -> Sequence[UnitRecord]: ...


class UnitView(UnitRecord, Protocol):
    """What ranking reads of a unit (:class:`~hermes_sdk.instrument.handles.UnitHandle`), plus
    the slot where its hints are cached."""

    _hints: Hints | None

    @property
    def run(self) -> RunView: ...


def run_state(run: RunView, unit: UnitView | None) -> RunState:
    """The :class:`RunState` of ``run`` while ``unit`` (or nothing, between stages) executes."""
    now = perf_counter_ns()
    current = unit.root if unit is not None else None
    cut = current.start_ns if current is not None else now
    done = []
    for u in list(run.units):
        root_end = u.root.end_ns
        if u.root is not current and root_end is not None and root_end <= cut:
            done.append(u)
    nodes = completed_nodes(done, now)
    if current is None:
        return RunState(node=nodes[-1], visits=visit_counts(nodes)) if nodes else RunState()
    return RunState(
        node=current.name,
        visits=visit_counts(nodes, current.name),
        running=True,
        elapsed_s=(now - current.start_ns) / NS_PER_S,
        input_tokens=current.input_tokens,
    )


def compute_hints(run: RunView, unit: UnitView | None) -> Hints:
    """Hints for ``unit`` of ``run`` (rank and remaining-demand quantiles when a graph exists)."""
    rank_s = p50 = p95 = None
    output_tokens = None
    try:
        state = run_state(run, unit)
        registry = _rt.RUNTIME.registry()
        tables = registry.rank_tables
        if tables is None:
            tables = registry.rank_tables = RankTables(registry)
        found = tables.hints(run.app, state, run.tenant)
        rank_s, p50, p95 = found.rank_s, found.p50_s, found.p95_s
        if unit is not None and unit.kind == "llm":
            output_tokens = found.output_tokens
    except Exception as exc:
        log.debug("hermes: no rank for run %s: %r", run.run_id, exc)
    return Hints(
        app=run.app,
        run_id=run.run_id,
        unit=unit.name if unit is not None else None,
        kind=unit.kind if unit is not None else None,
        deadline_s=run.deadline_s,
        rank_s=rank_s,
        remaining_p50_s=p50,
        remaining_p95_s=p95,
        predicted_output_tokens=output_tokens,
    )


def unit_hints(unit: UnitView) -> Hints:
    """Hints of ``unit``, computed once and cached on it."""
    hints = unit._hints
    if hints is None:
        hints = unit._hints = compute_hints(unit.run, unit)
    return hints
