"""Learning a batch of runs at once: :meth:`PDGraph.observe_many`, the same graph bit for bit as
:meth:`PDGraph.observe` of each run in turn, at a fraction of the cost.

One pass reads the batch into per-node, per-sketch value lists and per-row target lists (a
path it rejects is skipped, as ``observe`` would refuse it). Then:

* rows: a transition row is independent of every other row and of the node sketches (an alarm
  on it only replaces its own window), so each row counts and watches its departures of the
  whole batch at once (:func:`~hermes_sdk.graph.drift_batch.fold_row`);
* nodes: a change acted on in a node's value streams cuts the node's sketches, so the runs are
  learned in *segments* ending before the first such change: every value stream of the segment
  is folded at once (:func:`~hermes_sdk.graph.drift_batch.fold_values`, re-freezes read the
  sketch as it was then), the segment's samples are appended in bulk (:meth:`Sketch.extend`),
  and the run of the change is learned alone by the one-run path, then the next segment starts.

The lock, the compiled-table invalidation and the answer cache are taken care of once per batch.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from itertools import repeat
from math import fsum
from operator import add
from typing import Any, Protocol

from hermes_sdk.errors import GraphError
from hermes_sdk.graph import drift, drift_batch
from hermes_sdk.graph.compiled_graph import GraphCompiler
from hermes_sdk.graph.learned import NodeState
from hermes_sdk.graph.node_runs import SKETCHES, WATCHED, NodeRuns
from hermes_sdk.graph.prior import PooledPrior
from hermes_sdk.graph.records import END, START, RunPath, Stage
from hermes_sdk.graph.sketch import Sketch
from hermes_sdk.graph.token_model import TokenModel
from hermes_sdk.graph.validation import MAX_NODES, check_path


class LearningGraph(Protocol):
    """The parts of a :class:`~hermes_sdk.graph.pdgraph.PDGraph` that batch learning reads and
    writes (a protocol, so this module does not import ``pdgraph``, which imports it)."""

    app: str
    window: int
    half_life_s: float | None
    max_visit: int
    max_stale_fraction: float
    prior: PooledPrior
    runs: int
    failed_runs: int
    empty_runs: int
    version: int
    changed_version: int
    nodes: dict[str, NodeState]
    transitions: dict[tuple[str, int], Counter[str]]
    _recent: dict[tuple[str, int], deque[str]]
    _names: dict[str, str]
    token_models: dict[str, TokenModel]
    run_service_s: Sketch
    _compiler: GraphCompiler
    _cache: OrderedDict[Any, Any]
    _drift: drift.DriftMonitor | None
    changes: Counter[str]
    changed_at: dict[str, float]

    def _fold_stage(self, node: NodeState, stage: Stage, t_s: float, failed_run: bool) -> None: ...

    def _watch_values(self, stage: Stage, node: NodeState, t_s: float, failed: bool) -> None: ...


def observe_batch(
    graph: LearningGraph,
    paths: Sequence[RunPath],
    checked: bool,
    prior: list[tuple[int, float]] | None,
) -> list[tuple[int, GraphError]]:
    """Learn ``paths`` in order (the caller holds the graph's lock): PDGraph.observe_many."""
    rejected: list[tuple[int, GraphError]] = []
    known = set(graph.nodes)
    runs: list[RunPath] = []
    where: list[int] = []  # each run's index in ``paths``
    nodes: dict[str, NodeRuns] = {}
    rows: dict[tuple[str, int], tuple[list[str], list[int]]] = {}
    tokens: list[tuple[int, str, int, int, float]] = []
    totals: list[float] = []  # each learned run's service seconds
    max_visit, intern = graph.max_visit, graph._names
    for b, path in enumerate(paths):
        try:
            if checked:  # (checked alone, but the batch may add nodes: new ones at most)
                new = (
                    {s.node for s in path.stages if s.node not in known}
                    if len(known) + len(path.stages) > MAX_NODES
                    else None
                )
                if new and len(known) + len(new) > MAX_NODES:
                    raise GraphError(f"graph of app {graph.app!r} would exceed {MAX_NODES} nodes")
            else:
                check_path(path, graph.app, known)
        except GraphError as exc:
            rejected.append((b, exc))
            continue
        if not path.stages:
            graph.empty_runs += 1
            continue
        r = len(runs)
        runs.append(path)
        where.append(b)
        failed = bool(path.failed)
        visits: dict[str, int] = {}
        source, source_visit = START, 1
        seconds: list[float] = []  # each stage's Stage.service_s, for the run's total
        add_seconds = seconds.append
        for stage in path.stages:
            name = stage.node
            nr = nodes.get(name)
            if nr is None:
                node = graph.nodes.get(name)
                if node is None:
                    node = NodeState(stage.kind, stage.backend, graph.window, graph.half_life_s)
                    graph.nodes[name] = node
                    known.add(name)
                nr = nodes[name] = NodeRuns(node)
            nr.stages.append(stage)
            nr.stage_runs.append(r)
            calls = stage.calls
            if len(calls) == 1:
                add_seconds(calls[0].service_s + 0.0)  # Stage.service_s of one call
                if failed:
                    nr.simple = False
            else:
                add_seconds(stage.service_s)
                nr.simple = False
            if stage.backend is not None:
                for call in calls:
                    if (
                        not call.failed
                        and call.input_tokens is not None
                        and call.output_tokens is not None
                    ):
                        tokens.append(
                            (
                                r,
                                stage.backend,
                                call.input_tokens,
                                call.output_tokens,
                                call.service_s,
                            )
                        )
            visit = visits[name] = visits.get(name, 0) + 1
            key = (source, source_visit if source_visit < max_visit else max_visit)
            row = rows.get(key)
            if row is None:
                row = rows[key] = ([], [])
            row[0].append(intern.setdefault(name, name))
            row[1].append(r)
            source, source_visit = name, visit
        totals.append(fsum(seconds))  # RunPath.service_s: the same fsum of the same floats
        if not failed:
            key = (source, source_visit if source_visit < max_visit else max_visit)
            row = rows.get(key)
            if row is None:
                row = rows[key] = ([], [])
            row[0].append(END)
            row[1].append(r)
    if runs:
        _learn(graph, runs, nodes, rows, tokens, prior, where, totals)
    return rejected


def _learn(
    graph: LearningGraph,
    runs: list[RunPath],
    nodes: dict[str, NodeRuns],
    rows: dict[tuple[str, int], tuple[list[str], list[int]]],
    tokens: list[tuple[int, str, int, int, float]],
    prior: list[tuple[int, float]] | None,
    where: list[int],
    totals: list[float],
) -> None:
    runs0, version0 = graph.runs, graph.version
    times = [float(p.started_at) for p in runs]
    marks: dict[str, list[tuple[int, float, tuple[int, ...]]]] = {}
    for name, nr in nodes.items():
        nr.build(runs)
        if graph._drift is not None:  # (totals from the sketches before the batch)
            marks[name] = nr.marks(runs0, times)
    changed = _learn_rows(graph, rows, times, version0)
    a, total = 0, len(runs)
    while a < total:
        b = _segment(graph, nodes, a, total, runs0)
        _commit(graph, runs0, nodes, marks, tokens, runs, times, where, prior, totals, a, b)
        if b < total:  # the run of a change: learned alone
            graph.runs, graph.version = runs0 + b, version0 + b
            path = runs[b]
            failed = bool(path.failed)
            for stage in path.stages:
                node = graph.nodes[stage.node]
                graph._fold_stage(node, stage, times[b], failed)
                graph._watch_values(stage, node, times[b], failed)
            _finish_runs(graph, runs, times, where, prior, totals, b, b + 1)
        a = b + 1
    graph.runs, graph.version = runs0 + total, version0 + total
    graph.failed_runs += sum(1 for p in runs if p.failed)
    if changed:
        graph.changed_version = max(graph.changed_version, changed)
    graph._compiler.touch(set(graph.nodes) | {START}, set(graph.nodes))
    if graph.max_stale_fraction == 0.0 or graph.changed_version > version0:
        graph._cache.clear()


def _learn_rows(
    graph: LearningGraph,
    rows: dict[tuple[str, int], tuple[list[str], list[int]]],
    run_times: list[float],
    version0: int,
) -> int:
    """Count and watch every row's departures; returns the version of the last change seen."""
    monitor = graph._drift
    changed = 0
    for key, (targets, run_of) in rows.items():
        times = [run_times[r] for r in run_of]
        counter = graph.transitions.get(key)
        if counter is None:
            counter = graph.transitions[key] = Counter()
            graph._recent[key] = deque()
        row = drift_batch.RowState(counter, graph._recent[key])
        stream = None if monitor is None else monitor.row_stream(key)
        alarms = drift_batch.fold_row(stream, row, targets, times, graph.window)
        if alarms:
            graph.transitions[key], graph._recent[key] = row.counter, row.recent
            for i, since_s in alarms:
                graph.changes[key[0]] += 1
                node = key[0]
                graph.changed_at[node] = max(since_s, graph.changed_at.get(node, since_s))
                changed = max(changed, version0 + run_of[i] + 1)
    return changed


def _segment(
    graph: LearningGraph, nodes: dict[str, NodeRuns], a: int, total: int, runs0: int
) -> int:
    """Fold runs ``a..`` into the node streams up to the first change acted on; returns the
    index of its run (``total``: none), the streams left exactly after the run before it."""
    monitor = graph._drift
    if monitor is None:
        return total
    held: list[tuple[drift.Stream, tuple[object, ...]]] = []
    todo: list[tuple[drift.Stream, NodeRuns, int, int, int]] = []
    first = total
    for name, nr in nodes.items():
        streams = monitor.node_values.get(name)
        if streams is None:
            streams = monitor.node_values[name] = {}
        for sketch_name, k in WATCHED:
            run_of = nr.runs[k]
            lo, hi = bisect_left(run_of, a), len(run_of)
            if lo == hi:
                continue
            stream = streams.get(sketch_name)
            if stream is None:
                stream = streams[sketch_name] = monitor.value_stream(name, sketch_name)
            held.append((stream, drift_batch.snapshot(stream)))
            todo.append((stream, nr, k, lo, hi))
            at = _fold(stream, nr, k, lo, hi, runs0)
            if at is not None and run_of[at] < first:
                first = run_of[at]
    if first < total:  # again, each stream stopping before that run
        for stream, state in held:
            drift_batch.restore(stream, state)
        for stream, nr, k, lo, _ in todo:
            hit = _fold(stream, nr, k, lo, bisect_left(nr.runs[k], first), runs0)
            assert hit is None
    return first


def _fold(stream: drift.Stream, nr: NodeRuns, k: int, lo: int, hi: int, runs0: int) -> int | None:
    """Fold values ``lo:hi`` of sketch ``k`` into ``stream``; the index of a change acted on."""
    vals = nr.vals[k]
    ends = nr.ends[k]
    sketch = nr.node.sketch(SKETCHES[k])
    held: list[list[float]] = []

    def reference(i: int) -> list[float]:
        if not held:
            held.append(sketch.chronological()[0].tolist())
        j = lo + i
        return (held[0] + vals[lo : ends.get(j, j + 1)])[-sketch.window :]

    times = list(map(add, nr.runs[k][lo:hi], repeat(runs0)))
    at = drift_batch.fold_values(stream, vals[lo:hi], times, reference, sketch.window, hi - lo)
    return None if at is None else lo + at


def _commit(
    graph: LearningGraph,
    runs0: int,
    nodes: dict[str, NodeRuns],
    marks_of: dict[str, list[tuple[int, float, tuple[int, ...]]]],
    tokens: list[tuple[int, str, int, int, float]],
    runs: list[RunPath],
    times: list[float],
    where: list[int],
    prior: list[tuple[int, float]] | None,
    totals: list[float],
    a: int,
    b: int,
) -> None:
    """Add runs ``a..b-1``'s samples, counts, token fits and marks to the graph."""
    monitor = graph._drift
    for name, nr in nodes.items():
        node = nr.node
        stamps: dict[int, list[float]] = {}  # per run list: the times of runs a..b-1's values
        for k, sketch_name in enumerate(SKETCHES):
            run_of = nr.runs[k]
            lo, hi = bisect_left(run_of, a), bisect_left(run_of, b)
            if lo < hi:
                sketch: Sketch = getattr(node, sketch_name)
                at = stamps.get(id(run_of))
                if at is None:
                    at = stamps[id(run_of)] = list(map(times.__getitem__, run_of[lo:hi]))
                sketch.extend(nr.vals[k][lo:hi], at)
        lo, hi = bisect_left(nr.stage_runs, a), bisect_left(nr.stage_runs, b)
        if lo < hi:  # as stage by stage: the last kind, the last backend given, the counts
            stages = nr.stages[lo:hi]
            node.kind = stages[-1].kind
            for stage in reversed(stages):
                if stage.backend is not None:
                    node.backend = stage.backend
                    break
            node.count += hi - lo
            node.calls += hi - lo if nr.simple else sum([len(s.calls) for s in stages])
        new_marks = marks_of.get(name)
        if monitor is not None and new_marks:
            first_run, last_run = runs0 + a, runs0 + b
            marks = monitor.marks.get(name)
            if marks is None:
                marks = monitor.marks[name] = deque(maxlen=drift.MARKS)
            marks.extend(m for m in new_marks if first_run <= m[0] < last_run)
    per_backend: dict[str, list[tuple[int, int, float]]] = {}  # (in their first calls' order)
    for _, backend, x_in, x_out, service_s in tokens[
        bisect_left(tokens, (a,)) : bisect_left(tokens, (b,))
    ]:
        calls = per_backend.get(backend)
        if calls is None:
            calls = per_backend[backend] = []
        calls.append((x_in, x_out, service_s))
    for backend, calls in per_backend.items():  # a backend's fit sees its calls in order
        model = graph.token_models.get(backend)
        if model is None:
            model = graph.token_models[backend] = TokenModel()
        model.add_many(calls)
    _finish_runs(graph, runs, times, where, prior, totals, a, b)


def _finish_runs(
    graph: LearningGraph,
    runs: list[RunPath],
    times: list[float],
    where: list[int],
    prior: list[tuple[int, float]] | None,
    totals: list[float],
    a: int,
    b: int,
) -> None:
    """The run totals (``totals``: each run's ``RunPath.service_s``) of runs ``a..b-1``
    (complete ones only) and their prior samples."""
    for r in range(a, b):
        if runs[r].failed:
            continue
        service_s = totals[r]
        graph.run_service_s.add(service_s, times[r])
        if prior is None:
            graph.prior.add(service_s)
        else:
            prior.append((where[r], service_s))
