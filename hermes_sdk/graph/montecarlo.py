"""Vectorised Monte Carlo of remaining demand over a compiled PDGraph.

:class:`~hermes_sdk.graph.compiled_graph.GraphCompiler` turns the graph into flat numpy arrays
(:mod:`hermes_sdk.graph.compiled_graph`): one ``np.searchsorted`` draws the next node for all
paths at once, and a stage's demand is one uniform index into a flat per-node table.

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

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.compiled_graph import CompiledGraph
from hermes_sdk.graph.learned import NodeState
from hermes_sdk.graph.prior import conditioned_residual
from hermes_sdk.graph.records import START, RunState
from hermes_sdk.graph.sketch import FloatArray, SortedSamples

MAX_STAGES = 64
"""Most stages (including the running one) one Monte Carlo path may walk."""
MAX_WIDTH_DRAWS = 64
"""Widths above this sum MAX_WIDTH_DRAWS residual draws scaled by width / MAX_WIDTH_DRAWS."""
TOKEN_DRAWS = 256

Demand = Literal["service", "latency"]
"""What a walk sums per stage: ``service`` (backend seconds, summed over the fan-out) or
``latency`` (wall-clock seconds from stage start to its last call's end, as recorded)."""


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
