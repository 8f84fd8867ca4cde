"""Hints for a running unit, with a rank looked up locally in the app's rank tables.

A Gittins index depends only on the run's own state, so the client can rank itself with no
service: the same per-state tables as the server's (:mod:`hermes_sdk.graph.rank_tables`) give
``rank_s = 1 / gittins_index`` and the remaining-demand quantiles with a lookup, no Monte Carlo
on the app's call path. This runs only when hints are asked for (never on the decorator hot
path), is cached per unit, and fails open to ``rank_s=None``. A wrapped model call's hints are
those at its unit's start, served from caches (:mod:`hermes_sdk.instrument.start_hints`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from time import perf_counter_ns
from typing import Protocol

from hermes_sdk.client.hints import Hints
from hermes_sdk.graph.rank_tables import RankTables, StateHints
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
    the slots where its hints are cached: ``_hints``, and ``_sent``, the tables' answer its
    hints were built from when a wrapped call sent them (its hints are then made from it)."""

    _hints: Hints | None
    _sent: tuple[StateHints | None] | None

    @property
    def run(self) -> RunView: ...


def running_state(
    current: UnitRecord, visits: tuple[tuple[str, int], ...], now_ns: int
) -> RunState:
    """The :class:`RunState` while top-level unit ``current`` runs, at ``now_ns``."""
    return RunState(
        node=current.name,
        visits=visits,
        running=True,
        elapsed_s=(now_ns - current.start_ns) / NS_PER_S,
        input_tokens=current.input_tokens,
    )


def run_state(run: RunView, unit: UnitView | None, now_ns: int | None = None) -> RunState:
    """The :class:`RunState` of ``run`` while ``unit`` (or nothing, between stages) executes,
    at ``now_ns`` (``perf_counter_ns``; default now)."""
    now = perf_counter_ns() if now_ns is None else now_ns
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
    return running_state(current, visit_counts(nodes, current.name), now)


def rank_tables() -> RankTables:
    """The local registry's rank tables, made on first use (may raise StoreError)."""
    registry = _rt.RUNTIME.registry()
    tables = registry.rank_tables
    if tables is None:
        tables = registry.rank_tables = RankTables(registry)
    return tables


def lookup(run: RunView, unit: UnitView | None, now_ns: int | None = None) -> StateHints | None:
    """The rank tables' answer for ``run`` while ``unit`` executes at ``now_ns`` (default now);
    None when there is none (logged at debug level: the hints go out without a rank)."""
    try:
        return rank_tables().hints(run.app, run_state(run, unit, now_ns), run.tenant)
    except Exception as exc:
        log.debug("hermes: no rank for run %s: %r", run.run_id, exc)
        return None


def hints_of(run: RunView, unit: UnitView | None, found: StateHints | None) -> Hints:
    """The :class:`Hints` of ``unit`` of ``run`` given the tables' answer ``found``."""
    return Hints(
        app=run.app,
        run_id=run.run_id,
        unit=unit.name if unit is not None else None,
        kind=unit.kind if unit is not None else None,
        deadline_s=run.deadline_s,
        rank_s=found.rank_s if found is not None else None,
        remaining_p50_s=found.p50_s if found is not None else None,
        remaining_p95_s=found.p95_s if found is not None else None,
        predicted_output_tokens=(
            found.output_tokens
            if found is not None and unit is not None and unit.kind == "llm"
            else None
        ),
    )


def compute_hints(run: RunView, unit: UnitView | None, now_ns: int | None = None) -> Hints:
    """Hints for ``unit`` of ``run`` at ``now_ns`` (default now): rank and remaining-demand
    quantiles when a graph exists."""
    return hints_of(run, unit, lookup(run, unit, now_ns))


def unit_hints(unit: UnitView) -> Hints:
    """Hints of ``unit``, computed once (at the first ask, or from the answer a wrapped call
    was sent with) and cached on it."""
    hints = unit._hints
    if hints is None:
        sent = unit._sent
        if sent is not None:
            hints = hints_of(unit.run, unit, sent[0])
        else:
            hints = compute_hints(unit.run, unit)
        unit._hints = hints
    return hints
