"""What one rank table holds and how it is computed: the grid, the Monte Carlo basis, the points,
a rebuild that can be done a step at a time (:class:`Rebuild`), and the tables' settings.

:mod:`hermes_sdk.graph.rank_tables` owns the tables (lookups, staleness, which ones to rebuild);
this module knows one table at a time. A table's grid is the running unit's learned per-call
service quantiles (``j / GRID_QUANTILES``) plus geometric points past the largest sample; each
point is computed from the table's basis (one walk of what follows the running stage, then the
stage's residual at the point's elapsed time, with the same draws at every point), so a point
is the same whether it is computed at once, one per step, or on first use.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_right
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.montecarlo import stage_laws, stage_residual
from hermes_sdk.graph.pdgraph import PDGraph
from hermes_sdk.graph.records import START, RunState
from hermes_sdk.graph.sketch import SortedSamples
from hermes_sdk.policy.gittins import gittins_index_and_quantum

GRID_QUANTILES: Final = 16
"""Grid points inside the learned per-call service range (at quantiles ``j / GRID_QUANTILES``)."""
TAIL_FACTORS: Final = (1.5, 2.5, 4.0, 7.0, 12.0, 20.0, 40.0, 100.0)
"""Grid points past the largest learned call, as multiples of it."""
FALLBACK_GRID_S: Final = (0.0, *(0.01 * 2.0**k for k in range(21)))
"""Grid of a running node the graph has not learned (10 ms doubling to ~3 h)."""
QUANTILE_PROBS: Final = (np.arange(64) + 0.5) / 64
"""Probabilities of the equal-weight summary kept per grid point (usable as 64 samples)."""
TOKEN_BUCKETS_PER_DOUBLING: Final = 4

TableKey = tuple[str, str, str, tuple[tuple[str, int], ...], bool, int | None, int | None]
"""(tenant, app, node, visits, running, width, prompt-size bucket) of a stored table."""


def token_bucket(tokens: int | None) -> int | None:
    """The prompt-size bucket of ``tokens`` (a quarter of a doubling wide), None if unknown."""
    if tokens is None:
        return None
    return math.floor(math.log2(max(tokens, 1)) * TOKEN_BUCKETS_PER_DOUBLING + 0.5)


def bucket_tokens(bucket: int | None) -> int | None:
    """The representative prompt size of a bucket (the table is computed at it)."""
    if bucket is None:
        return None
    return max(1, math.floor(math.pow(2.0, bucket / TOKEN_BUCKETS_PER_DOUBLING) + 0.5))


@dataclass(frozen=True, slots=True)
class RankTableSettings:
    """How stale a table may get and how much each table holds (see the module docstring)."""

    max_stale_fraction: float = 0.2
    """A table is due for a rebuild once its graph learned this fraction more runs."""
    min_stale_runs: int = 8
    """... or this many runs, whichever is larger (young graphs rebuild less often)."""
    hard_factor: float = 2.0
    """A lookup rebuilds inline a table older than this many allowances."""
    samples: int = 1000
    """Monte Carlo samples per grid point."""
    max_tables: int = 65_536
    """Tables kept (least recently used ones are dropped)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_stale_fraction) and self.max_stale_fraction >= 0.0):
            raise GraphError(f"max_stale_fraction must be >= 0, got {self.max_stale_fraction!r}")
        if self.min_stale_runs < 0 or not self.hard_factor >= 1.0:
            raise GraphError("min_stale_runs must be >= 0 and hard_factor >= 1")
        if self.samples < 1 or self.max_tables < 1:
            raise GraphError("samples and max_tables must be >= 1")

    @property
    def exact(self) -> bool:
        """Whether every change of a graph rebuilds its tables (no staleness at all)."""
        return self.max_stale_fraction == 0.0 and self.min_stale_runs == 0

    def allowance(self, built_version: int) -> float:
        """Runs a table built at ``built_version`` may fall behind before it is due."""
        return max(self.max_stale_fraction * built_version, float(self.min_stale_runs))


@dataclass(frozen=True, slots=True)
class RankPoint:
    """What one grid point holds: Gittins rank and quantum, remaining-demand summary (seconds)."""

    rank_s: float
    quantum_s: float
    """Service (app seconds, summed over the stage's calls) the index stays at least this high."""
    p50_s: float
    p95_s: float
    quantiles_s: NDArray[np.float64]
    """Remaining service at :data:`QUANTILE_PROBS` (read-only)."""


@dataclass(frozen=True, slots=True)
class StateHints:
    """A state's hints from its table: rank and remaining-demand quantiles (seconds), and the
    running node's median output tokens (None when not an ``llm`` node or never learned)."""

    rank_s: float
    p50_s: float
    p95_s: float
    output_tokens: int | None


@dataclass(frozen=True, slots=True)
class Basis:
    """What every grid point of a table draws from, fixed at build: the remaining demand after
    the running stage (``future``, read-only), the running call's law and width draws (None when
    nothing runs: ``future`` is then the whole answer), and the seed of the residual draws."""

    future: NDArray[np.float64]
    calls: SortedSamples | None
    widths: NDArray[np.int64] | None
    seed: int


class StateTable:
    """The rank table of one (tenant, app, position), built at one graph version."""

    __slots__ = (
        "basis",
        "grid",
        "key",
        "latency",
        "output_tokens",
        "points",
        "position",
        "version",
        "width",
    )

    def __init__(
        self,
        position: RunState,
        version: int,
        grid: list[float],
        output_tokens: int | None,
        basis: Basis,
    ) -> None:
        self.position = position
        """The state the table is computed at (``elapsed_s`` 0; tokens at the bucket's size)."""
        self.version = version
        self.grid = grid
        """Per-call elapsed seconds of each point, ascending, first 0."""
        self.width = max(1, position.width or 1)
        self.points: list[RankPoint | None] = [None] * len(grid)
        self.latency: list[NDArray[np.float64] | None] = [None] * len(grid)
        self.output_tokens = output_tokens
        """Median output tokens learned for the running ``llm`` node (None otherwise)."""
        self.basis = basis
        self.key: TableKey | None = None
        """The key it is stored under in :class:`~hermes_sdk.graph.rank_tables.RankTables`."""

    def compute(self, j: int) -> RankPoint:
        """Grid point ``j`` from the basis (not stored; the same answer every time)."""
        basis = self.basis
        if basis.calls is None or basis.widths is None:
            return point_of(np.sort(basis.future))
        rng = np.random.default_rng(basis.seed)  # the same draws at every point of the grid
        residual = stage_residual(basis.calls, basis.widths, self.grid[j], rng)
        return point_of(np.sort(residual + basis.future))


def build_table(graph: PDGraph, position: RunState, samples: int) -> StateTable:
    """A table of ``position`` at ``graph``'s version, no point computed yet (about a tenth of a
    millisecond: one Monte Carlo walk of ``samples`` draws)."""
    with graph._lock:  # one consistent version while a learner folds runs in
        grid, tokens = _grid_of(graph, position), _output_tokens(graph, position)
        basis = _basis(graph, position, samples)
        return StateTable(position, graph.version, grid, tokens, basis)


class Rebuild:
    """A rebuild of ``old`` done a step at a time: :meth:`step` first builds the new table (its
    basis), then computes one of the points ``old`` had answered per call; the new table is
    :attr:`done` once it covers every elapsed time ``old``'s points answered, including points
    lookups computed on ``old`` while the rebuild was under way. Until then lookups keep reading
    ``old``. Each step is one Monte Carlo walk or one point (~0.05-0.2 ms)."""

    __slots__ = ("_todo", "graph", "new", "old", "samples")

    def __init__(self, old: StateTable, graph: PDGraph, samples: int) -> None:
        self.old = old
        self.graph = graph
        self.samples = samples
        self.new: StateTable | None = None
        self._todo: list[int] = []

    @property
    def done(self) -> bool:
        """Whether the new table is built and has every point it needs (see :meth:`step`)."""
        if self.new is None or self._todo:
            return False
        self._todo = [j for j in covering(self.old, self.new.grid) if self.new.points[j] is None]
        return not self._todo

    def step(self) -> None:
        """One step: build the new table, or compute its next missing point."""
        if self.new is None:
            self.new = build_table(self.graph, self.old.position, self.samples)
            self.new.key = self.old.key
            return
        if not self._todo and self.done:
            return
        j = self._todo.pop(0)
        self.new.points[j] = self.new.compute(j)

    def finish(self) -> StateTable:
        """Every remaining step at once; the new table."""
        while not self.done:
            self.step()
        assert self.new is not None
        return self.new


def covering(old: StateTable, grid: list[float]) -> range:
    """Indices of ``grid`` whose points answer every elapsed time ``old``'s computed points
    answered (the span they covered, plus the point after it), so lookups stay lookups."""
    used = [j for j, p in enumerate(old.points) if p is not None]
    if not used:
        return range(0)
    low, high = old.grid[used[0]], old.grid[min(used[-1] + 1, len(old.grid) - 1)]
    first = max(bisect_right(grid, low) - 1, 0)
    last = min(bisect_right(grid, high), len(grid) - 1)
    return range(first, last + 1)


def at_elapsed(position: RunState, elapsed_s: float) -> RunState:
    """``position`` with ``elapsed_s`` seconds of its running stage done."""
    if elapsed_s == 0.0:
        return position
    return RunState(
        node=position.node,
        visits=position.visits,
        running=position.running,
        elapsed_s=elapsed_s,
        input_tokens=position.input_tokens,
        width=position.width,
    )


def summary(ordered: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sorted samples at :data:`QUANTILE_PROBS` (read-only)."""
    idx = np.minimum((QUANTILE_PROBS * ordered.size).astype(np.int64), ordered.size - 1)
    out = np.asarray(ordered[idx], dtype=np.float64)
    out.setflags(write=False)
    return out


def point_of(ordered: NDArray[np.float64]) -> RankPoint:
    """A grid point from sorted remaining-demand samples."""
    index, quantum = gittins_index_and_quantum(ordered)
    m = ordered.size
    return RankPoint(
        rank_s=1.0 / index,
        quantum_s=quantum,
        p50_s=float(ordered[min(int(0.5 * m), m - 1)]),
        p95_s=float(ordered[min(int(0.95 * m), m - 1)]),
        quantiles_s=summary(ordered),
    )


def _output_tokens(graph: PDGraph, position: RunState) -> int | None:
    node = graph.nodes.get(position.node) if position.running else None
    if node is None or node.kind != "llm" or len(node.output_tokens) == 0:
        return None
    median = node.output_tokens.quantile(0.5)
    return None if median is None else math.floor(median + 0.5)


def _grid_of(graph: PDGraph, position: RunState) -> list[float]:
    if not position.running or position.node == START:
        return [0.0]
    node = graph.nodes.get(position.node)
    if node is None or len(node.service_s) == 0:
        return list(FALLBACK_GRID_S)
    values = node.service_s.sorted_values()
    inner = np.quantile(values, np.arange(1, GRID_QUANTILES) / GRID_QUANTILES, method="lower")
    top = float(values[-1])
    points = {0.0, *(float(x) for x in inner if x > 0.0)}
    if top > 0.0:
        points.update(top * f for f in TAIL_FACTORS)
    return sorted(points)


def _basis(graph: PDGraph, position: RunState, n: int) -> Basis:
    """The draws a table's points share (call with the graph's lock held)."""
    seed = zlib.crc32(repr(position).encode()) ^ (graph.version * 2654435761)
    compiled = graph._compiler.get(graph)
    i = compiled.index.get(position.node)
    if not position.running or position.node == START:
        future = graph.remaining_demand(position, n=n)
        return Basis(future, None, None, seed)
    rng = np.random.default_rng(seed ^ 0x5EED)
    if i is None:  # a node never learned: its residual from all stages, then nothing known
        return Basis(np.zeros(n), compiled.all_stages(), np.ones(n, dtype=np.int64), seed)
    between = RunState(position.node, position.visits)
    future = graph._future(compiled, between, n, None)
    calls, widths = stage_laws(compiled, compiled.nodes[i], position, n, rng)
    return Basis(future, calls, widths, seed)
