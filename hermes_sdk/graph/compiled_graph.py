"""A PDGraph compiled to flat numpy arrays, the form :mod:`hermes_sdk.graph.montecarlo` samples.

:class:`GraphCompiler` turns the graph's counters and sketches into flat arrays (updated
incrementally after each observe): for every ``(source, visit)`` row a cumulative transition
distribution stored as ``row + 1 + cdf``, so that **one** ``np.searchsorted`` draws the next node
for all paths at once whatever node each path is at; and for every node an equal-weight table of
per-stage service seconds (and one of stage latency), so a stage's demand is one uniform index
into a flat array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hermes_sdk.graph.learned import LearnedGraph, NodeState
from hermes_sdk.graph.records import END, START
from hermes_sdk.graph.sketch import FloatArray, SortedSamples
from hermes_sdk.graph.token_model import TokenModel


@dataclass(frozen=True, slots=True)
class CompiledGraph:
    """Flat arrays of one graph version (see module docstring).

    ``nodes`` are the graph's live node states: simulate() reads their sketches for the running
    stage, which is safe because the graph holds its lock while it simulates.
    """

    names: tuple[str, ...]
    index: dict[str, int]
    max_visit: int
    trans_flat: FloatArray  # (N + 2) * K rows of N + 1 targets, row r holds r + 1 + cumulative p
    trans_target: np.ndarray  # node index (N = END) of each trans_flat position, plus one END
    stage_table: FloatArray  # per node equal-weight stage service seconds (+1 guard), concatenated
    latency_table: FloatArray  # same layout (starts, lengths) for stage latency seconds
    stage_start: FloatArray  # offset of each node's table in stage_table (float for speed)
    stage_len: FloatArray  # entries per node table, excluding the guard
    nodes: tuple[NodeState, ...]
    tables: tuple[FloatArray, ...]
    token_models: dict[str, TokenModel]
    visit_free: bool  # no source's next-node law depends on the visit: skip visit counting

    def all_stages(self) -> SortedSamples:
        """Every node's stage demand pooled with equal weight (for a node never seen)."""
        values = np.sort(np.concatenate(self.tables)) if self.tables else np.zeros(0)
        cum = np.arange(1, values.size + 1) / max(values.size, 1)
        return SortedSamples(values, cum, equal_weights=True)


def _source_rows(graph: LearnedGraph, src: str, index: dict[str, int], k: int) -> FloatArray:
    """Cumulative next-node distributions of ``src`` for visits 1..k, shape (k, N + 1).

    Same fallbacks as :meth:`PDGraph.transition_counts` (nearest lower observed visit, then all
    visits of the node); a source never seen goes to END.
    """
    end = len(index)
    rows = np.zeros((k, end + 1))
    if src != END:
        last: FloatArray | None = None
        for v in range(1, k + 1):
            counts = graph.transitions.get((src, v))
            if counts:
                row = np.zeros(end + 1)
                for target, c in counts.items():
                    row[end if target == END else index[target]] += c
                last = row
            if last is not None:
                rows[v - 1] = last
        if last is None:
            for v in range(1, k + 1):
                rows[v - 1] = _row_from(graph.transition_counts(src, v), index)
    totals = rows.sum(axis=1)
    rows[totals <= 0, end] = 1.0
    totals[totals <= 0] = 1.0
    cum = np.cumsum(rows / totals[:, None], axis=1)
    cum[:, -1] = 1.0
    return cum


def _row_from(counts: dict[str, int], index: dict[str, int]) -> FloatArray:
    end = len(index)
    row = np.zeros(end + 1)
    for target, c in counts.items():
        row[end if target == END else index[target]] += c
    return row


class GraphCompiler:
    """Builds a graph's CompiledGraph incrementally: only what the last observes touched.

    A new node changes every row's width, so it triggers a full rebuild. Otherwise the rows of
    the sources on the observed paths are rewritten in place in the flat transition table, and
    the demand tables of the nodes on those paths are rewritten in place when their length is
    unchanged (always, once a sketch's window is full), else the demand table is re-packed.
    """

    def __init__(self) -> None:
        self._names: tuple[str, ...] = ()
        self._slot: dict[str, int] = {}
        self._cum: FloatArray = np.zeros((0, 0, 0))
        self._visit_free = np.zeros(0, dtype=bool)
        self._tables: dict[str, FloatArray] = {}
        self._latency: dict[str, FloatArray] = {}
        self._dirty_sources: set[str] = set()
        self._dirty_nodes: set[str] = set()
        self._full = True
        self._last: CompiledGraph | None = None
        self._compiled: CompiledGraph | None = None

    def touch(self, sources: set[str], nodes: set[str]) -> None:
        """Mark what one observe() changed."""
        self._dirty_sources |= sources
        self._dirty_nodes |= nodes
        self._compiled = None

    def get(self, graph: LearnedGraph) -> CompiledGraph:
        """The CompiledGraph of ``graph``'s current state."""
        if self._compiled is not None:
            return self._compiled
        names = tuple(sorted(graph.nodes))  # canonical: results depend only on learned state
        k = graph.max_visit
        last = self._last
        if self._full or last is None or names != self._names or self._cum.shape[1] != k:
            index = {name: i for i, name in enumerate(names)}
            sources = [*names, END, START]
            self._slot = {src: i for i, src in enumerate(sources)}
            self._cum = np.stack([_source_rows(graph, src, index, k) for src in sources])
            self._visit_free = np.array([_same_rows(c) for c in self._cum])
            self._tables = {name: _node_table(graph.nodes[name]) for name in names}
            self._latency = {
                name: _latency_table(graph.nodes[name], self._tables[name]) for name in names
            }
            compiled = _assemble(graph, names, index, self._cum, self._tables, self._latency)
        else:
            compiled = self._update(graph, last, k)
        self._names, self._full, self._last = names, False, compiled
        self._dirty_sources.clear()
        self._dirty_nodes.clear()
        self._compiled = compiled
        return compiled

    def _update(self, graph: LearnedGraph, last: CompiledGraph, k: int) -> CompiledGraph:
        width = self._cum.shape[2]
        trans_flat = last.trans_flat
        for src in self._dirty_sources:
            s = self._slot[src]
            cum = _source_rows(graph, src, last.index, k)
            self._cum[s] = cum
            self._visit_free[s] = _same_rows(cum)
            offsets = np.arange(s * k + 1, (s + 1) * k + 1, dtype=np.float64)[:, None]
            trans_flat[s * k * width : (s + 1) * k * width] = (cum + offsets).ravel()
        stage_table, latency_table, repack = last.stage_table, last.latency_table, False
        for name in self._dirty_nodes:
            table = _node_table(graph.nodes[name])
            latency = _latency_table(graph.nodes[name], table)
            i = last.index[name]
            if table.size != int(last.stage_len[i]):
                repack = True
            elif not repack:
                start = int(last.stage_start[i])
                for flat, values in ((stage_table, table), (latency_table, latency)):
                    flat[start : start + values.size] = values
                    flat[start + values.size] = values[-1]
            self._tables[name] = table
            self._latency[name] = latency
        if repack:
            stage_table, starts, lengths = _pack_tables(self._tables, last.names)
            latency_table = _pack_tables(self._latency, last.names)[0]
        else:
            starts, lengths = last.stage_start, last.stage_len
        return CompiledGraph(
            names=last.names,
            index=last.index,
            max_visit=k,
            trans_flat=trans_flat,
            trans_target=last.trans_target,
            stage_table=stage_table,
            latency_table=latency_table,
            stage_start=starts,
            stage_len=lengths,
            nodes=last.nodes,
            tables=tuple(self._tables[name] for name in last.names),
            token_models=graph.token_models,
            visit_free=bool(self._visit_free.all()),
        )


def _same_rows(cum: FloatArray) -> bool:
    """Whether a source's next-node law is the same for every visit."""
    return bool(np.array_equal(cum, np.broadcast_to(cum[:1], cum.shape)))


def _node_table(node: NodeState) -> FloatArray:
    sketch = node.stage_service_s
    if sketch.half_life_s is None:  # equal weights: the sorted samples are the table
        return sketch.sorted_values() if len(sketch) else np.zeros(1)
    return _equal_weight_table(sketch.sorted())


def _latency_table(node: NodeState, service: FloatArray) -> FloatArray:
    """Equal-weight stage latency seconds, as long as the node's service table.

    Both sketches get one sample per stage, so their tables normally have the same length; a node
    without latency samples (a graph loaded from JSON, which does not carry them) falls back to
    the service table divided by the node's mean fan-out width (calls run in parallel).
    """
    sketch = node.stage_latency_s
    if len(sketch) == 0:
        width = node.width.sorted().mean() if len(node.width) else None
        return np.asarray(service / max(1.0, width or 1.0), dtype=np.float64)
    if sketch.half_life_s is None:
        table = sketch.sorted_values()
    else:
        table = _equal_weight_table(sketch.sorted())
    if table.size != service.size:  # resample to the service table's equal-weight grid
        grid = (np.arange(service.size) + 0.5) / service.size
        table = np.quantile(table, grid)
    return np.asarray(table, dtype=np.float64)


def _pack_tables(
    tables: dict[str, FloatArray], names: tuple[str, ...]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One flat demand table: each node's table + a guard entry, then END's two zeros."""
    lengths = np.array([tables[name].size for name in names] + [1], dtype=np.float64)
    starts = np.concatenate(([0.0], np.cumsum(lengths + 1.0)[:-1]))
    packed = np.zeros(int(lengths.sum() + lengths.size))
    for name, start in zip(names, starts.tolist(), strict=False):
        table = tables[name]
        begin = int(start)
        packed[begin : begin + table.size] = table
        packed[begin + table.size] = table[-1]  # guard entry for u * len == len
    return packed, starts, lengths


def _assemble(
    graph: LearnedGraph,
    names: tuple[str, ...],
    index: dict[str, int],
    cum: FloatArray,
    tables: dict[str, FloatArray],
    latency: dict[str, FloatArray],
) -> CompiledGraph:
    n_rows, width = cum.shape[0] * cum.shape[1], cum.shape[2]
    end = len(names)
    # row r is stored as r + 1 + cumulative p, so the query for (node, visit) is node*k + visit + u
    trans_flat = (cum.reshape(n_rows, width) + np.arange(1, n_rows + 1)[:, None]).ravel()
    # target of each flat position; one extra END entry guards a search past the last row
    trans_target = np.append(np.tile(np.arange(width, dtype=np.int64), n_rows), end)
    stage_table, starts, lengths = _pack_tables(tables, names)
    return CompiledGraph(
        names=names,
        index=index,
        max_visit=graph.max_visit,
        trans_flat=trans_flat,
        trans_target=trans_target,
        stage_table=stage_table,
        latency_table=_pack_tables(latency, names)[0],
        stage_start=starts,
        stage_len=lengths,
        nodes=tuple(graph.nodes[name] for name in names),
        tables=tuple(tables[name] for name in names),
        token_models=graph.token_models,
        visit_free=all(_same_rows(c) for c in cum),
    )


def compile_graph(graph: LearnedGraph) -> CompiledGraph:
    """Precompute the sampling arrays of ``graph``'s current version from scratch."""
    return GraphCompiler().get(graph)


EQUAL_WEIGHT_POINTS = 1024
"""Inverse-CDF points tabulated for a time-decayed (unequally weighted) sketch."""


def _equal_weight_table(samples: SortedSamples) -> FloatArray:
    """Values such that a uniform index draws from ``samples``' (weighted) distribution.

    Without decay the samples themselves (exact); with decay the weighted inverse CDF at
    ``(j + 0.5) / EQUAL_WEIGHT_POINTS`` (quantised to 1/1024 of probability).
    """
    if samples.values.size == 0:
        return np.zeros(1)
    probs = np.diff(samples.cum_weights, prepend=0.0)
    if np.allclose(probs, probs[0], rtol=1e-12, atol=0.0):
        return np.asarray(samples.values, dtype=np.float64)
    grid = (np.arange(EQUAL_WEIGHT_POINTS) + 0.5) / EQUAL_WEIGHT_POINTS
    idx = np.searchsorted(samples.cum_weights, grid, side="left")
    idx = np.minimum(idx, samples.values.size - 1)
    return np.asarray(samples.values[idx], dtype=np.float64)
