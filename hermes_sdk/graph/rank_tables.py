"""Per-state rank tables: an event's rank is a table lookup, not a Monte Carlo walk.

For every (tenant, app, graph position) a scheduler asks about, a :class:`StateTable` holds, on a
grid of per-call elapsed seconds in the running stage (the attained service in that state), the
Gittins rank (``1 / index``, seconds) and its quantum, and an equal-weight summary of the
remaining-demand distribution (:data:`QUANTILE_PROBS`, plus exact p50/p95); the remaining-latency
summary (for LSTF) is filled on first use. A position is the :class:`RunState` without its
``elapsed_s``: node, visit counts, running, width, and the prompt size bucketed to a quarter of
a doubling (:func:`token_bucket`).

Each grid point is computed from the graph's own Monte Carlo the first time it is needed (one
walk of what follows the running stage per table, then the stage's residual at that elapsed
time, with the same draws at every point); a lookup between two points interpolates linearly.
The grid is the running unit's learned per-call service quantiles (``j / GRID_QUANTILES``)
plus geometric points past the largest sample.

Staleness (see docs/theory.md, "Rank tables"): a table built when its graph had learned ``v_b``
runs is *due* once the graph has learned more than ``max(f * v_b, min_stale_runs)`` runs since
(``f = max_stale_fraction``); :meth:`RankTables.refresh` (called on the learning path, never on
a lookup) rebuilds due tables. A lookup never serves a table older than ``hard_factor`` times
that allowance: past it, the lookup rebuilds inline. ``f = 0`` rebuilds on every change
(the exact ranker). Apps answered from the pooled prior (no complete run yet) are not tabled.
"""

from __future__ import annotations

import math
import threading
import zlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

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


class GraphSource(Protocol):
    """Where tables read graphs and samples from (the :class:`GraphRegistry`)."""

    def get(self, app: str, tenant: str = "default") -> PDGraph | None:
        """The app's graph, None if it has none."""
        ...

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """Samples of remaining service seconds."""
        ...

    def remaining_latency(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """Samples of remaining wall-clock seconds."""
        ...


@dataclass(frozen=True, slots=True)
class _Basis:
    """What every grid point of a table draws from, fixed at build: the remaining demand after
    the running stage (``future``, read-only), the running call's law and width draws (None when
    nothing runs: ``future`` is then the whole answer), and the seed of the residual draws."""

    future: NDArray[np.float64]
    calls: SortedSamples | None
    widths: NDArray[np.int64] | None
    seed: int


_Key = tuple[str, str, str, tuple[tuple[str, int], ...], bool, int | None, int | None]


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
        basis: _Basis,
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
        self.key: _Key | None = None
        """The key it is stored under in :class:`RankTables` (set when stored)."""


_KEEP, _DUE, _REBUILD = 0, 1, 2
"""What a lookup does with a stored table at its graph's current version."""


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


class RankTables:
    """Every state's rank table over a :class:`GraphSource`; thread-safe.

    ``on_rebuild`` is called once per table (re)built, ``on_lookup(seconds)`` per rank looked
    up (the server's ``/metrics`` counter and histogram).
    """

    def __init__(
        self,
        source: GraphSource,
        settings: RankTableSettings | None = None,
        *,
        on_rebuild: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.settings = settings if settings is not None else RankTableSettings()
        self.on_rebuild = on_rebuild
        self.rebuilds = 0
        """Tables built or rebuilt so far."""
        self.inline_rebuilds = 0
        """Of ``rebuilds``, those a lookup had to do itself (past the hard bound, or first use)."""
        self.lookup_points = 0
        """Grid points a lookup had to compute (first use of that part of a table)."""
        self._tables: OrderedDict[_Key, StateTable] = OrderedDict()
        self._due: dict[_Key, None] = {}
        self._by_graph: dict[tuple[str, str], dict[_Key, None]] = {}
        """(tenant, app) -> the keys of its tables, so learning can find the ones it made due."""
        self._seen: dict[tuple[str, str], int] = {}
        """(tenant, app) -> the graph version its tables were last checked at."""
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._tables)

    # --- lookups ------------------------------------------------------------------------------

    def point(self, app: str, state: RunState, tenant: str = "default") -> RankPoint:
        """The grid point at or below ``state``'s elapsed time (built first when needed): its
        rank, quantum and remaining-demand summary, e.g. for an index over the samples."""
        graph = self.source.get(app, tenant)
        if graph is None or not _tabled(graph):
            return self._untabled(app, state, tenant)
        with self._lock:
            table, j = self._locate(graph, app, state, tenant)
            return self._point_at(app, table, j, tenant)

    def hints(self, app: str, state: RunState, tenant: str = "default") -> StateHints:
        """Rank, remaining-demand p50/p95 and predicted output tokens of ``state`` (seconds;
        linear between the two grid points around its elapsed time)."""
        return self.hints_and_table(app, state, tenant)[0]

    def hints_and_table(
        self, app: str, state: RunState, tenant: str = "default"
    ) -> tuple[StateHints, StateTable | None]:
        """:meth:`hints` and the table that answered (None: the app is not tabled), for callers
        that reuse an answer while :meth:`serves` says the same lookup would give it again."""
        graph = self.source.get(app, tenant)
        if graph is None or not _tabled(graph):
            p = self._untabled(app, state, tenant)
            return StateHints(p.rank_s, p.p50_s, p.p95_s, None), None
        with self._lock:
            table, j = self._locate(graph, app, state, tenant)
            lo, hi, t = self._around(app, table, j, tenant, state.elapsed_s)
            return StateHints(
                lo.rank_s + t * (hi.rank_s - lo.rank_s),
                lo.p50_s + t * (hi.p50_s - lo.p50_s),
                lo.p95_s + t * (hi.p95_s - lo.p95_s),
                table.output_tokens,
            ), table

    def serves(self, table: StateTable, graph: PDGraph) -> bool:
        """Whether a lookup of ``table``'s position now would answer from ``table`` as it is:
        still stored, ``graph`` (its app's current graph) tabled, and neither rebuilt nor due at
        ``graph``'s version. Touches the table as a lookup does (LRU order). Never builds."""
        key = table.key
        with self._lock:
            if key is None or self._tables.get(key) is not table or not _tabled(graph):
                return False
            if graph.version != table.version and self._verdict(table, graph) != _KEEP:
                return False
            self._tables.move_to_end(key)
            return True

    def gittins(self, app: str, state: RunState, tenant: str = "default") -> tuple[float, float]:
        """``(rank_s, quantum_s)`` of ``state``: the Gittins rank (linear between the two grid
        points around its elapsed time) and the service after which to look it up again (the
        lower point's quantum, at least up to the next grid point)."""
        graph = self.source.get(app, tenant)
        if graph is None or not _tabled(graph):
            p = self._untabled(app, state, tenant)
            return p.rank_s, p.quantum_s
        with self._lock:
            table, j = self._locate(graph, app, state, tenant)
            grid = table.grid
            if len(grid) == 1:
                point = self._point_at(app, table, 0, tenant)
                return point.rank_s, point.quantum_s
            lo, hi, t = self._around(app, table, j, tenant, state.elapsed_s)
            width = table.width
            until = grid[j] + lo.quantum_s / width
            if j + 1 < len(grid) and grid[j + 1] > until:
                until = grid[j + 1]
            rank = lo.rank_s + t * (hi.rank_s - lo.rank_s)
            return rank, max((until - state.elapsed_s) * width, 0.0)

    def latency_quantiles(
        self, app: str, state: RunState, tenant: str = "default"
    ) -> NDArray[np.float64]:
        """Remaining latency seconds of ``state`` at :data:`QUANTILE_PROBS`: the grid point's
        at or below its elapsed time, less the running stage's progress since that point."""
        graph = self.source.get(app, tenant)
        if graph is None or not _tabled(graph):
            samples = self.source.remaining_latency(
                app, state, tenant=tenant, n=self.settings.samples
            )
            return _summary(np.sort(samples))
        with self._lock:
            table, j = self._locate(graph, app, state, tenant)
            lat = table.latency[j]
            if lat is None:
                at = _at(table.position, table.grid[j])
                samples = self.source.remaining_latency(
                    app, at, tenant=tenant, n=self.settings.samples
                )
                lat = table.latency[j] = _summary(np.sort(samples))
        progress = state.elapsed_s - table.grid[j]
        if progress <= 0.0 or not state.running:
            return lat
        out = np.maximum(lat - progress, 0.0)
        out.setflags(write=False)
        return out

    def _point_at(self, app: str, table: StateTable, j: int, tenant: str) -> RankPoint:
        point = table.points[j]
        if point is None:
            point = table.points[j] = self._compute(app, table, j, tenant)
            self.lookup_points += 1
        return point

    def _around(
        self, app: str, table: StateTable, j: int, tenant: str, elapsed_s: float
    ) -> tuple[RankPoint, RankPoint, float]:
        """The points at and after grid index ``j`` and ``elapsed_s``'s weight between them."""
        lo = self._point_at(app, table, j, tenant)
        grid = table.grid
        if j + 1 >= len(grid) or elapsed_s <= grid[j]:
            return lo, lo, 0.0
        hi = self._point_at(app, table, j + 1, tenant)
        return lo, hi, min((elapsed_s - grid[j]) / (grid[j + 1] - grid[j]), 1.0)

    # --- maintenance --------------------------------------------------------------------------

    def due(self) -> int:
        """Tables due for a rebuild (their graph learned more than their allowance since)."""
        with self._lock:
            self._mark_due()
            return len(self._due)

    def _mark_due(self) -> None:
        """Find the tables of every graph that learned since the last check that fell due."""
        settings = self.settings
        for (tenant, app), keys in self._by_graph.items():
            graph = self.source.get(app, tenant)
            if graph is None or self._seen.get((tenant, app)) == graph.version:
                continue
            version = self._seen[(tenant, app)] = graph.version
            for key in keys:
                table = self._tables.get(key)
                if table is not None and (
                    version - table.version > settings.allowance(table.version)
                    or table.version < graph.changed_version  # a detected change: not stale
                ):
                    self._due[key] = None

    def refresh(self, budget: int | None = None) -> int:
        """Rebuild up to ``budget`` due tables (all if None), with the points they had; returns
        how many were rebuilt. Call it on the learning path, never on a lookup."""
        done = 0
        with self._lock:
            self._mark_due()
            while self._due and (budget is None or done < budget):
                key = next(iter(self._due))
                del self._due[key]
                old = self._tables.get(key)
                if old is None:
                    continue
                graph = self.source.get(key[1], key[0])
                if graph is None or graph.version == old.version:
                    continue
                table = self._build(graph, old.position)
                table.key = key
                for j in _covering(old, table.grid):
                    table.points[j] = self._compute(key[1], table, j, key[0])
                self._tables[key] = table
                done += 1
        return done

    def _locate(
        self, graph: PDGraph, app: str, state: RunState, tenant: str
    ) -> tuple[StateTable, int]:
        bucket = token_bucket(state.input_tokens)
        visits = state.visits
        cap = graph.max_visit
        for _, count in visits:
            if count > cap:  # the graph's laws stop at max_visit: more visits are the same state
                visits = tuple((name, min(c, cap)) for name, c in visits)
                break
        key: _Key = (tenant, app, state.node, visits, state.running, state.width, bucket)
        table = self._tables.get(key)
        version = graph.version
        if table is None:
            table = self._new(graph, key, state, bucket)
        elif table.version != version:
            verdict = self._verdict(table, graph)
            if verdict == _REBUILD:
                self._due.pop(key, None)
                table = self._new(graph, key, state, bucket)
            elif verdict == _DUE:
                self._due[key] = None
        self._tables.move_to_end(key)
        return table, max(bisect_right(table.grid, state.elapsed_s) - 1, 0)

    def _verdict(self, table: StateTable, graph: PDGraph) -> int:
        """``_KEEP``, ``_DUE`` (past its allowance) or ``_REBUILD`` (past the hard bound, exact
        settings, or a change detected since it was built) for ``table`` at ``graph``'s version."""
        behind = graph.version - table.version
        if behind == 0:
            return _KEEP
        settings = self.settings
        allowance = settings.allowance(table.version)
        changed = table.version < graph.changed_version  # a change was detected since
        if behind > allowance * settings.hard_factor or settings.exact or changed:
            return _REBUILD
        return _DUE if behind > allowance else _KEEP

    def _new(self, graph: PDGraph, key: _Key, state: RunState, bucket: int | None) -> StateTable:
        position = RunState(
            node=state.node,
            visits=key[3],
            running=state.running,
            elapsed_s=0.0,
            input_tokens=bucket_tokens(bucket),
            width=state.width,
        )
        table = self._tables[key] = self._build(graph, position)
        table.key = key
        self._by_graph.setdefault((key[0], key[1]), {})[key] = None
        self.inline_rebuilds += 1
        if len(self._tables) > self.settings.max_tables:
            old, _ = self._tables.popitem(last=False)
            self._due.pop(old, None)
            self._by_graph.get((old[0], old[1]), {}).pop(old, None)
        return table

    def _build(self, graph: PDGraph, position: RunState) -> StateTable:
        with graph._lock:  # one consistent version while a learner folds runs in
            grid, tokens = _grid_of(graph, position), _output_tokens(graph, position)
            basis = _basis(graph, position, self.settings.samples)
            table = StateTable(position, graph.version, grid, tokens, basis)
        self.rebuilds += 1
        if self.on_rebuild is not None:
            self.on_rebuild()
        return table

    def _compute(self, app: str, table: StateTable, j: int, tenant: str) -> RankPoint:
        basis = table.basis
        if basis.calls is None or basis.widths is None:
            return _point(np.sort(basis.future))
        rng = np.random.default_rng(basis.seed)  # the same draws at every point of the grid
        residual = stage_residual(basis.calls, basis.widths, table.grid[j], rng)
        return _point(np.sort(residual + basis.future))

    def _untabled(self, app: str, state: RunState, tenant: str) -> RankPoint:
        samples = self.source.remaining_demand(app, state, tenant=tenant, n=self.settings.samples)
        return _point(np.sort(samples))


def _tabled(graph: PDGraph) -> bool:
    """Whether ``graph``'s app is answered from tables (it has a run that did not fail)."""
    return graph.runs != graph.failed_runs


def _basis(graph: PDGraph, position: RunState, n: int) -> _Basis:
    """The draws a table's points share (call with the graph's lock held)."""
    seed = zlib.crc32(repr(position).encode()) ^ (graph.version * 2654435761)
    compiled = graph._compiler.get(graph)
    i = compiled.index.get(position.node)
    if not position.running or position.node == START:
        future = graph.remaining_demand(position, n=n)
        return _Basis(future, None, None, seed)
    rng = np.random.default_rng(seed ^ 0x5EED)
    if i is None:  # a node never learned: its residual from all stages, then nothing known
        return _Basis(np.zeros(n), compiled.all_stages(), np.ones(n, dtype=np.int64), seed)
    between = RunState(position.node, position.visits)
    future = graph._future(compiled, between, n, None)
    calls, widths = stage_laws(compiled, compiled.nodes[i], position, n, rng)
    return _Basis(future, calls, widths, seed)


def _covering(old: StateTable, grid: list[float]) -> range:
    """Indices of ``grid`` whose points answer every elapsed time ``old``'s computed points
    answered (the span they covered, plus the point after it), so lookups stay lookups."""
    used = [j for j, p in enumerate(old.points) if p is not None]
    if not used:
        return range(0)
    low, high = old.grid[used[0]], old.grid[min(used[-1] + 1, len(old.grid) - 1)]
    first = max(bisect_right(grid, low) - 1, 0)
    last = min(bisect_right(grid, high), len(grid) - 1)
    return range(first, last + 1)


def _at(position: RunState, elapsed_s: float) -> RunState:
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


def _summary(ordered: NDArray[np.float64]) -> NDArray[np.float64]:
    idx = np.minimum((QUANTILE_PROBS * ordered.size).astype(np.int64), ordered.size - 1)
    out = np.asarray(ordered[idx], dtype=np.float64)
    out.setflags(write=False)
    return out


def _point(ordered: NDArray[np.float64]) -> RankPoint:
    """A grid point from sorted remaining-demand samples."""
    index, quantum = gittins_index_and_quantum(ordered)
    m = ordered.size
    return RankPoint(
        rank_s=1.0 / index,
        quantum_s=quantum,
        p50_s=float(ordered[min(int(0.5 * m), m - 1)]),
        p95_s=float(ordered[min(int(0.95 * m), m - 1)]),
        quantiles_s=_summary(ordered),
    )
