"""Vectorised Monte Carlo of remaining demand over a compiled PDGraph.

``compile_graph`` turns the graph's counters and sketches into flat numpy arrays once per graph
version: for every ``(source, visit)`` row a cumulative transition distribution, and for every node
its sorted per-stage service samples, both offset by the row/node index so that **one**
``np.searchsorted`` draws the next node (or stage demand) for all paths at once, whatever node
each path is at.

``simulate`` then:

1. for a running stage, adds the residual of the current unit, conditioned on ``elapsed_s``
   (draws ``X - elapsed_s`` from ``X > elapsed_s``; see
   :func:`~hermes_sdk.graph.prior.conditioned_residual` for the tail extrapolation), times the
   fan-out width (known, else sampled). For an ``llm`` node whose prompt size is known and whose
   backend's token model is fitted, ``X`` is the token model's prediction
   ``a + b * input_tokens + c * output_tokens`` over the node's output-token samples;
2. walks transitions by (node, visit index) with per-path visit counters, adding a per-stage
   service sample (the sum over that stage's fan-out, learned jointly) for every stage entered,
   until END or :data:`MAX_STAGES` stages in total (longer paths are truncated).

A running node the graph has never seen contributes a residual drawn from all of the app's stage
samples, and the path then ends (nothing is known about what follows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hermes_sdk.graph.prior import conditioned_residual
from hermes_sdk.graph.records import END, START, RunState
from hermes_sdk.graph.sketch import FloatArray, SortedSamples
from hermes_sdk.graph.token_model import TokenModel

if TYPE_CHECKING:
    from hermes_sdk.graph.pdgraph import PDGraph

MAX_STAGES = 64
"""Most stages (including the running one) one Monte Carlo path may walk."""
MAX_WIDTH_DRAWS = 64
"""Widths above this sum MAX_WIDTH_DRAWS residual draws scaled by width / MAX_WIDTH_DRAWS."""
TOKEN_DRAWS = 256
_U_MAX = 1.0 - 1e-9  # keeps row + u strictly below row + 1 in floating point


@dataclass(frozen=True, slots=True)
class NodeArrays:
    """What simulate() needs about one node for its running stage."""

    kind: str
    backend: str | None
    call_s: SortedSamples
    width: SortedSamples
    output_tokens: SortedSamples


@dataclass(frozen=True, slots=True)
class CompiledGraph:
    """Flat arrays of one graph version (see module docstring)."""

    names: tuple[str, ...]
    index: dict[str, int]
    max_visit: int
    trans_flat: FloatArray  # (N + 1) * K rows of N + 1 targets, row r holds r + cumulative p
    stage_values: FloatArray  # per node sorted stage service seconds, concatenated
    stage_flat: FloatArray  # node index + cumulative weight, aligned with stage_values
    stage_end: np.ndarray  # exclusive end offset of each node's samples
    nodes: tuple[NodeArrays, ...]
    all_stages: SortedSamples
    token_models: dict[str, TokenModel]


def compile_graph(graph: PDGraph) -> CompiledGraph:
    """Precompute the sampling arrays of ``graph``'s current version."""
    names = tuple(graph.nodes)
    index = {name: i for i, name in enumerate(names)}
    n_nodes, k = len(names), graph.max_visit
    width = n_nodes + 1  # targets: nodes then END
    rows = np.zeros(((n_nodes + 1) * k, width))
    sources = [*names, START]
    for s, src in enumerate(sources):
        for v in range(1, k + 1):
            counts = graph.transition_counts(src, v)
            row = rows[s * k + v - 1]
            for target, c in counts.items():
                row[n_nodes if target == END else index[target]] += c
            total = row.sum()
            if total <= 0:
                row[n_nodes] = 1.0
                total = 1.0
            np.cumsum(row / total, out=row)
            row[-1] = 1.0
    trans_flat = (rows + np.arange(rows.shape[0])[:, None]).ravel()

    values_parts, flat_parts, ends, node_arrays = [], [], [], []
    offset = 0
    for i, name in enumerate(names):
        st = graph.nodes[name]
        stage = st.stage_service_s.sorted()
        vals = stage.values if stage.values.size else np.zeros(1)
        cum = stage.cum_weights if stage.values.size else np.ones(1)
        values_parts.append(vals)
        flat_parts.append(cum + i)
        offset += vals.size
        ends.append(offset)
        node_arrays.append(
            NodeArrays(
                kind=st.kind,
                backend=st.backend,
                call_s=st.service_s.sorted(),
                width=st.width.sorted(),
                output_tokens=st.output_tokens.sorted(),
            )
        )
    all_values = np.sort(np.concatenate(values_parts)) if values_parts else np.zeros(0)
    all_cum = np.arange(1, all_values.size + 1) / max(all_values.size, 1)
    return CompiledGraph(
        names=names,
        index=index,
        max_visit=k,
        trans_flat=trans_flat,
        stage_values=np.concatenate(values_parts) if values_parts else np.zeros(1),
        stage_flat=np.concatenate(flat_parts) if flat_parts else np.ones(1),
        stage_end=np.asarray(ends, dtype=np.int64),
        nodes=tuple(node_arrays),
        all_stages=SortedSamples(all_values, all_cum),
        token_models=dict(graph.token_models),
    )


def _call_distribution(
    cg: CompiledGraph, node: NodeArrays, state: RunState, rng: np.random.Generator
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
                float(state.input_tokens), node.output_tokens.sample(rng, TOKEN_DRAWS)
            )
            if pred is not None:
                values = np.sort(pred)
                return SortedSamples(values, np.arange(1, values.size + 1) / values.size)
    return node.call_s


def _running_residual(
    cg: CompiledGraph, node: NodeArrays, state: RunState, n: int, rng: np.random.Generator
) -> FloatArray:
    """Residual seconds of the running stage: sum over its width of conditioned call residuals."""
    calls = _call_distribution(cg, node, state, rng)
    if state.width is not None:
        widths = np.full(n, max(1, state.width), dtype=np.int64)
    elif len(node.width):
        widths = np.maximum(node.width.sample(rng, n).astype(np.int64), 1)
    else:
        widths = np.ones(n, dtype=np.int64)
    max_w = int(widths.max())
    if max_w == 1:
        return conditioned_residual(calls, state.elapsed_s, n, rng)
    draws_w = min(max_w, MAX_WIDTH_DRAWS)
    draws = conditioned_residual(calls, state.elapsed_s, n * draws_w, rng).reshape(n, draws_w)
    used = np.minimum(widths, draws_w)
    mask = np.arange(draws_w)[None, :] < used[:, None]
    total = (draws * mask).sum(axis=1)
    return np.asarray(total * (widths / used), dtype=np.float64)


def simulate(cg: CompiledGraph, state: RunState, n: int, rng: np.random.Generator) -> FloatArray:
    """``n`` samples of remaining service seconds of a run in ``state`` (see module docstring)."""
    n_nodes, k = len(cg.names), cg.max_visit
    width = n_nodes + 1
    total = np.zeros(n)
    stages_left = MAX_STAGES
    if state.node == START:
        start = n_nodes
    elif state.node in cg.index:
        start = cg.index[state.node]
    else:
        if state.running:
            total += conditioned_residual(cg.all_stages, state.elapsed_s, n, rng)
        return total
    counts = np.zeros((n, n_nodes + 1), dtype=np.int64)
    counts[:, n_nodes] = 1  # START is entered exactly once
    for name, c in state.visits:
        j = cg.index.get(name)
        if j is not None:
            counts[:, j] = c
    if start != n_nodes:
        counts[:, start] = np.maximum(counts[:, start], 1)
        if state.running:
            total += _running_residual(cg, cg.nodes[start], state, n, rng)
            stages_left -= 1
    alive = np.arange(n)
    cur = np.full(n, start, dtype=np.int64)
    for _ in range(stages_left):
        visit = np.minimum(counts[alive, cur], k)
        row = cur * k + visit - 1
        u = rng.random(alive.size) * _U_MAX
        pos = np.searchsorted(cg.trans_flat, row + u, side="right") - row * width
        nxt = np.minimum(pos, n_nodes)
        keep = nxt != n_nodes
        if not keep.all():
            alive, nxt = alive[keep], nxt[keep]
        if alive.size == 0:
            break
        counts[alive, nxt] += 1
        u2 = rng.random(alive.size) * _U_MAX
        g = np.searchsorted(cg.stage_flat, nxt + u2, side="right")
        g = np.minimum(g, cg.stage_end[nxt] - 1)
        total[alive] += cg.stage_values[g]
        cur = nxt
    return total
