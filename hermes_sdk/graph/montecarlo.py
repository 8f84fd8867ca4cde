"""Vectorised Monte Carlo of remaining demand over a compiled PDGraph.

:class:`GraphCompiler` turns the graph's counters and sketches into flat numpy arrays (updated
incrementally after each observe): for every ``(source, visit)`` row a cumulative transition
distribution stored as ``row + 1 + cdf``, so that **one** ``np.searchsorted`` draws the next node
for all paths at once whatever node each path is at; and for every node an equal-weight table of
per-stage service seconds, so a stage's demand is one uniform index into a flat array.

``simulate`` then:

1. for a running stage, adds the residual of the current unit, conditioned on ``elapsed_s``
   (draws ``X - elapsed_s`` from ``X > elapsed_s``; see
   :func:`~hermes_sdk.graph.prior.conditioned_residual` for the tail extrapolation), times the
   fan-out width (known, else sampled). For an ``llm`` node whose prompt size is known and whose
   backend's token model is fitted, ``X`` is the token model's prediction
   ``a + b * input_tokens + c * output_tokens`` over the node's output-token samples;
2. walks transitions by (node, visit index) with per-path visit counters (skipped when no node's
   law depends on the visit), adding a per-stage service sample (the sum over that stage's
   fan-out, learned jointly) for every stage entered, until END (absorbing, zero demand; finished
   paths are compacted away once half are done) or :data:`MAX_STAGES` stages in total (longer
   paths are truncated).

``simulate(..., kind="latency")`` is the same walk over a per-node table of stage *latency*
(wall-clock seconds, recorded per stage; the same equal-weight layout as the service table), and
takes the max rather than the sum over the running stage's parallel calls: what a deadline
policy needs, since a wide fan-out's service is many times its latency.

A running node the graph has never seen contributes a residual drawn from all of the app's stage
samples, and the path then ends (nothing is known about what follows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.learned import LearnedGraph, NodeState
from hermes_sdk.graph.prior import conditioned_residual
from hermes_sdk.graph.records import END, START, RunState
from hermes_sdk.graph.sketch import FloatArray, SortedSamples
from hermes_sdk.graph.token_model import TokenModel

MAX_STAGES = 64
"""Most stages (including the running one) one Monte Carlo path may walk."""
MAX_WIDTH_DRAWS = 64
"""Widths above this sum MAX_WIDTH_DRAWS residual draws scaled by width / MAX_WIDTH_DRAWS."""
TOKEN_DRAWS = 256

Demand = Literal["service", "latency"]
"""What a walk sums per stage: ``service`` (backend seconds, summed over the fan-out) or
``latency`` (wall-clock seconds from stage start to its last call's end, as recorded)."""


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


def _call_distribution(
    cg: CompiledGraph, node: NodeState, state: RunState, rng: np.random.Generator
) -> SortedSamples:
    """Per-call service distribution of the running unit (token model when applicable)."""
    if (
        node.kind == "llm"
        and state.input_tokens is not None
        and node.backend is not None
        and len(node.output_tokens) > 0
    ):
        model = cg.token_models.get(node.backend)
        if model is not None:
            pred = model.predict_s(
                float(state.input_tokens), node.output_tokens.sorted().sample(rng, TOKEN_DRAWS)
            )
            if pred is not None:
                values = np.sort(pred)
                cum = np.arange(1, values.size + 1) / values.size
                return SortedSamples(values, cum, equal_weights=True)
    return node.service_s.sorted()


def stage_laws(
    cg: CompiledGraph, node: NodeState, state: RunState, n: int, rng: np.random.Generator
) -> tuple[SortedSamples, NDArray[np.int64]]:
    """The running stage's per-call service law and ``n`` draws of its width (the known
    width when ``state.width`` is set): what its residual is drawn from at any elapsed time."""
    calls = _call_distribution(cg, node, state, rng)
    if state.width is not None:
        widths = np.full(n, max(1, state.width), dtype=np.int64)
    elif len(node.width):
        widths = np.maximum(node.width.sorted().sample(rng, n).astype(np.int64), 1)
    else:
        widths = np.ones(n, dtype=np.int64)
    return calls, widths


def stage_residual(
    calls: SortedSamples,
    widths: NDArray[np.int64],
    elapsed_s: float,
    rng: np.random.Generator,
    kind: Demand = "service",
) -> FloatArray:
    """Residual seconds of a running stage of ``widths.size`` paths: the sum (``service``) or,
    since the calls run in parallel, the max (``latency``) over its width of per-call residuals
    conditioned on ``elapsed_s`` seconds of each call already done."""
    n = widths.size
    max_w = int(widths.max())
    if max_w == 1:
        return conditioned_residual(calls, elapsed_s, n, rng)
    draws_w = min(max_w, MAX_WIDTH_DRAWS)
    draws = conditioned_residual(calls, elapsed_s, n * draws_w, rng).reshape(n, draws_w)
    if int(widths.min()) == max_w:  # one known width: every draw counts (no mask, same sums)
        if kind == "latency":
            return np.asarray(draws.max(axis=1), dtype=np.float64)
        return np.asarray(draws.sum(axis=1) * (max_w / draws_w), dtype=np.float64)
    used = np.minimum(widths, draws_w)
    mask = np.arange(draws_w)[None, :] < used[:, None]
    if kind == "latency":
        return np.asarray((draws * mask).max(axis=1), dtype=np.float64)
    total = (draws * mask).sum(axis=1)
    return np.asarray(total * (widths / used), dtype=np.float64)


def _running_residual(
    cg: CompiledGraph,
    node: NodeState,
    state: RunState,
    n: int,
    rng: np.random.Generator,
    kind: Demand = "service",
) -> FloatArray:
    """Residual seconds of the running stage (:func:`stage_laws`, then :func:`stage_residual`)."""
    calls, widths = stage_laws(cg, node, state, n, rng)
    return stage_residual(calls, widths, state.elapsed_s, rng, kind)


def running_residual(
    cg: CompiledGraph,
    state: RunState,
    n: int,
    rng: np.random.Generator,
    kind: Demand = "service",
) -> FloatArray:
    """Residual seconds of the stage running in ``state`` (zeros if nothing is running)."""
    if not state.running or state.node == START:
        return np.zeros(n)
    i = cg.index.get(state.node)
    if i is None:
        return conditioned_residual(cg.all_stages(), state.elapsed_s, n, rng)
    return _running_residual(cg, cg.nodes[i], state, n, rng, kind)


def simulate(
    cg: CompiledGraph,
    state: RunState,
    n: int,
    rng: np.random.Generator,
    *,
    max_stages: int = MAX_STAGES,
    kind: Demand = "service",
) -> FloatArray:
    """``n`` samples of remaining service (or, ``kind="latency"``, latency) seconds of a run in
    ``state`` (see module docstring); the same walk, only the per-stage table differs.

    ``max_stages`` counts the running stage, if any, plus the stages walked after it.
    """
    n_nodes, k = len(cg.names), cg.max_visit
    total = np.zeros(n)
    stages_left = max_stages
    if state.node == START:
        start = n_nodes  # replaced by the START row index below
    elif state.node in cg.index:
        start = cg.index[state.node]
    else:
        if state.running:
            total += conditioned_residual(cg.all_stages(), state.elapsed_s, n, rng)
        return total
    end, start_idx, stride = n_nodes, n_nodes + 1, n_nodes + 2
    if start == n_nodes:
        start = start_idx
    counts = np.zeros((n, stride), dtype=np.int64)
    counts[:, start_idx] = 1  # START is entered exactly once
    for name, c in state.visits:
        j = cg.index.get(name)
        if j is not None:
            counts[:, j] = c
    if start != start_idx:
        counts[:, start] = np.maximum(counts[:, start], 1)
        if state.running:
            total += _running_residual(cg, cg.nodes[start], state, n, rng, kind)
            stages_left -= 1
    flat_counts = counts.ravel()
    idx = np.arange(n)  # path id of each still-simulated row (compacted lazily)
    base = idx * stride  # offset of each row's counters in flat_counts
    cur = np.full(n, start, dtype=np.int64)
    acc = np.zeros(n)  # demand accumulated since the last compaction
    table = cg.latency_table if kind == "latency" else cg.stage_table
    table_len, table_start = cg.stage_len, cg.stage_start
    visit_free = cg.visit_free
    for _ in range(stages_left):
        m = idx.size
        u = rng.random(2 * m)  # row + u rounds up to the next row with p ~ 1e-13: negligible
        if visit_free:
            query = cur * k + (u[:m] + 1.0)
        else:
            query = cur * k + np.minimum(flat_counts[base + cur], k) + u[:m]
        nxt = cg.trans_target[np.searchsorted(cg.trans_flat, query, side="right")]
        if not visit_free:
            flat_counts[base + nxt] += 1  # END is absorbing and its stage table is 0
        acc += table[(u[m:] * table_len[nxt] + table_start[nxt]).astype(np.int64)]
        cur = nxt
        running = nxt != end
        live = int(np.count_nonzero(running))
        if live == 0:
            break
        if 2 * live <= m:  # compact: drop finished paths once half of the rows are done
            done = ~running
            total[idx[done]] += acc[done]
            idx, base, cur, acc = idx[running], base[running], cur[running], acc[running]
    total[idx] += acc
    return total
