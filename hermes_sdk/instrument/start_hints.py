"""A wrapped call's hints, evaluated at its unit's start and served from two caches.

``hermes.wrap`` opens a unit and hints the request at once, so its hints are those of the run at
the unit's start: ``compute_hints(run, unit, now_ns=unit.start_ns)`` (elapsed time 0 for a
top-level unit). Computing that from scratch on every call (the run's completed stages, the rank
tables' lookup, the ``Hints`` record and its encoding) cost ~7 us; here each part is reused while
it provably stays the same, so the values are exactly the ones computed from scratch (tested
property-based against :func:`~hermes_sdk.instrument.ranking.compute_hints`):

- the run's completed stages (:class:`~hermes_sdk.instrument.handles.RunPrefix`, on the run):
  a unit's position needs the visit counts of the stages its run completed before it started.
  Ended top-level units never change,
  so the counts of the units already seen are kept, and a call adds the units that ended since
  (:func:`~hermes_sdk.instrument.run_position.stage_nodes` on just those; units still running,
  such as a fan-out's siblings, are not completed stages and wait for a later call). It applies
  when they all started after the kept ones ended (so they form stages of their own); anything
  else (nested units of ended units, records ``form_stages`` must judge) takes the full path.
- each state's answer (:class:`Answer`, keyed by tenant, app, node, visits and prompt tokens): the
  tables' hints at elapsed time 0 and their encodings, reused while
  :meth:`~hermes_sdk.graph.rank_tables.RankTables.serves` says a lookup would answer from the
  same table unchanged (not rebuilt, not due, not evicted); otherwise looked up again.

Nested units (a call inside a decorated function: its position is its parent's, at the parent's
elapsed time) and apps without tables (the pooled prior) are looked up on every call.
"""

from __future__ import annotations

import threading
from typing import Final

from hermes_sdk.client.hints import identity_headers
from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.graph.pdgraph import PDGraph
from hermes_sdk.graph.rank_tables import RankTables, StateHints, StateTable
from hermes_sdk.instrument.handles import RunHandle, RunPrefix, UnitHandle
from hermes_sdk.instrument.ranking import hints_of, rank_tables, running_state
from hermes_sdk.instrument.run_position import stage_nodes

Visits = tuple[tuple[str, int], ...]
_Key = tuple[str, str, str, Visits, int | None]
"""(tenant, app, node, visits, prompt tokens): a running top-level unit's state at elapsed 0."""
_EncodingKey = tuple[str, int, float | None, bool]
"""(engine, levels, the run's deadline, whether the unit is an ``llm`` call)."""
MAX_ANSWERS: Final = 4096
"""States whose answers are kept (all are dropped when full: a lookup refills them)."""


EMPTY: Final = RunPrefix(0, {}, -1)


def start_visits(run: RunHandle, current: UnitHandle) -> Visits | None:
    """``RunState.visits`` of ``run`` while top-level unit ``current`` runs (its completed
    stages plus ``current``), or None when only the full path can tell."""
    prefix = run.hint_prefix or EMPTY
    cut = current.start_ns
    if prefix.max_end_ns > cut or current.end_ns is not None:
        return None
    units = run.units
    n = len(units)
    new: list[UnitHandle] = []
    stop = -1  # index of the first unit not consumed: ``current`` or one not done at ``cut``
    after = False  # a consumed unit is listed after ``stop``
    kept_end = last_end = prefix.max_end_ns
    pending = cut  # earliest start of a unit not done at ``cut`` (it must be consumed later)
    for i in range(prefix.consumed, n):
        u = units[i]
        root = u.root
        if root is current:
            if stop < 0:
                stop = i
            continue
        root_end = root.end_ns
        if root_end is None or root_end > cut:  # still running when ``current`` started
            if stop < 0:
                stop = i
            if root.start_ns < pending:
                pending = root.start_ns
            continue
        if root is not u or u.start_ns <= kept_end:
            return None
        new.append(u)
        if root_end > last_end:
            last_end = root_end
        after = after or stop >= 0
    counts = prefix.visits
    if new:
        nodes = stage_nodes(new)
        if nodes is None:
            return None
        grown = dict(counts)
        for node in nodes:
            grown[node] = grown.get(node, 0) + 1
        counts = grown
        if not after and pending > last_end:
            run.hint_prefix = RunPrefix(stop if stop >= 0 else n, grown, last_end)
    visits = dict(counts)
    visits[current.name] = visits.get(current.name, 0) + 1
    return tuple(sorted(visits.items()))


class Answer:
    """A state's answer from a rank table at elapsed time 0, and its request encodings."""

    __slots__ = ("_encoded", "found", "graph", "table", "tables")

    def __init__(
        self,
        tables: RankTables,
        graph: PDGraph | None,
        table: StateTable | None,
        found: StateHints,
    ) -> None:
        self.tables = tables
        self.graph = graph
        """The app's graph in ``tables``' source (a registry never replaces an app's graph)."""
        self.table = table
        """The table that answered (None: not tabled, the answer is not kept)."""
        self.found = found
        self._encoded: dict[_EncodingKey, tuple[dict[str, str], dict[str, object]]] = {}

    def request_kwargs(
        self, run: RunHandle, unit: UnitHandle, engine: str, levels: int
    ) -> dict[str, object]:
        """``openai_kwargs(hints, engine=engine, levels=levels)`` of ``unit``'s hints from this
        answer: the encoding of the first unit asked, with this unit's identity headers."""
        key = (engine, levels, run.deadline_s, unit.kind == "llm")
        done = self._encoded.get(key)
        if done is None:
            encoded = openai_kwargs(hints_of(run, unit, self.found), engine=engine, levels=levels)
            done = self._encoded[key] = (encoded["extra_headers"], encoded["extra_body"])
        headers = {**done[0], **identity_headers(run.app, run.run_id, unit.name, unit.kind)}
        return {"extra_headers": headers, "extra_body": _copy(done[1])}


def _copy(body: dict[str, object]) -> dict[str, object]:
    """A copy of a JSON body whose nested objects are copies too (the cached one is shared)."""
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in body.items()}


_answers: dict[_Key, Answer] = {}
_lock = threading.Lock()


def start_answer(run: RunHandle, unit: UnitHandle) -> Answer | None:
    """The rank tables' answer for top-level ``unit`` of ``run`` at its start, from the caches
    (looked up and kept when they do not hold it); None when the fast path does not apply
    (use ``compute_hints(run, unit, unit.start_ns)``). Never raises."""
    try:
        visits = start_visits(run, unit) if unit.root is unit else None
        if visits is None:
            return None
        tables = rank_tables()
        key = (run.tenant, run.app, unit.name, visits, unit.input_tokens)
        answer = _answers.get(key)
        if answer is not None and answer.tables is tables:
            table, graph = answer.table, answer.graph
            if table is not None and graph is not None and tables.serves(table, graph):
                return answer
        graph = tables.source.get(run.app, run.tenant)  # before the lookup: the one it reads
        state = running_state(unit, visits, unit.start_ns)
        found, table = tables.hints_and_table(run.app, state, run.tenant)
        answer = Answer(tables, graph, table, found)
        if table is None:
            return answer
        with _lock:
            if len(_answers) >= MAX_ANSWERS:
                _answers.clear()
            _answers[key] = answer
        return answer
    except Exception:
        return None  # the full path looks it up again, and logs why it fails
