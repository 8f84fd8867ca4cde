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
a lookup) rebuilds due tables, or :meth:`RankTables.refresh_step` a step (one Monte Carlo walk
or one grid point) at a time, the old table answering until the new one is complete. A lookup
never serves a table older than ``hard_factor`` times that allowance: past it, the lookup
rebuilds inline. ``f = 0`` rebuilds on every change (the exact ranker). Apps answered from the
pooled prior (no complete run yet) are not tabled. What one table holds and how it is computed,
and the settings: :mod:`hermes_sdk.graph.rank_table_build`.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.pdgraph import PDGraph
from hermes_sdk.graph.rank_table_build import (
    QUANTILE_PROBS,
    RankPoint,
    RankTableSettings,
    Rebuild,
    StateHints,
    StateTable,
    TableKey,
    at_elapsed,
    bucket_tokens,
    build_table,
    point_of,
    summary,
    token_bucket,
)
from hermes_sdk.graph.records import RunState

__all__ = [
    "QUANTILE_PROBS",
    "GraphSource",
    "RankPoint",
    "RankTableSettings",
    "RankTables",
    "StateHints",
    "StateTable",
    "bucket_tokens",
    "token_bucket",
]


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


_KEEP, _DUE, _REBUILD = 0, 1, 2
"""What a lookup does with a stored table at its graph's current version."""


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
        self._tables: OrderedDict[TableKey, StateTable] = OrderedDict()
        self._due: dict[TableKey, None] = {}
        self._by_graph: dict[tuple[str, str], dict[TableKey, None]] = {}
        """(tenant, app) -> the keys of its tables, so learning can find the ones it made due."""
        self._seen: dict[tuple[str, str], int] = {}
        """(tenant, app) -> the graph version its tables were last checked at."""
        self._job: Rebuild | None = None
        """The rebuild :meth:`refresh_step` has under way (its old table still answers)."""
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
            return summary(np.sort(samples))
        with self._lock:
            table, j = self._locate(graph, app, state, tenant)
            lat = table.latency[j]
            if lat is None:
                at = at_elapsed(table.position, table.grid[j])
                samples = self.source.remaining_latency(
                    app, at, tenant=tenant, n=self.settings.samples
                )
                lat = table.latency[j] = summary(np.sort(samples))
        progress = state.elapsed_s - table.grid[j]
        if progress <= 0.0 or not state.running:
            return lat
        out = np.maximum(lat - progress, 0.0)
        out.setflags(write=False)
        return out

    def _point_at(self, app: str, table: StateTable, j: int, tenant: str) -> RankPoint:
        point = table.points[j]
        if point is None:
            point = table.points[j] = table.compute(j)
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
            job = self._job
            return len(self._due) + (job is not None and job.old.key not in self._due)

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
        how many were rebuilt. Call it on the learning path, never on a lookup. A rebuild
        :meth:`refresh_step` left half done is finished first (and counts)."""
        done = 0
        with self._lock:
            while budget is None or done < budget:
                job = self._next_job()
                if job is None:
                    break
                job.finish()
                done += self._install(job)
        return done

    def refresh_step(self, budget_s: float = 0.0) -> tuple[int, bool]:
        """Rebuild due tables a step at a time (one Monte Carlo walk or one grid point, ~0.05-0.2
        ms each) until ``budget_s`` seconds have passed (at least one step) or a table is done;
        lookups meanwhile read the old table (within the hard bound, see :meth:`_verdict`).
        Returns (tables rebuilt: 0 or 1, whether more work remains). For an event loop: one call
        per loop turn keeps every turn short."""
        deadline = time.perf_counter() + budget_s
        with self._lock:
            while True:
                job = self._next_job()
                if job is None:
                    return 0, False
                job.step()
                if job.done:
                    built = self._install(job)
                    if built:
                        return 1, self._job is not None or bool(self._due)
                    continue  # nothing to do for that one: go on with the next
                if time.perf_counter() >= deadline:
                    return 0, True

    def _next_job(self) -> Rebuild | None:
        """The rebuild under way, else one for the next due table (None: nothing due)."""
        if self._job is not None:
            return self._job
        self._mark_due()
        while self._due:
            key = next(iter(self._due))
            del self._due[key]
            old = self._tables.get(key)
            if old is None:
                continue
            graph = self.source.get(key[1], key[0])
            if graph is None or self._verdict(old, graph) == _KEEP:
                continue  # gone, or rebuilt since it was marked
            self._job = Rebuild(old, graph, self.settings.samples)
            return self._job
        return None

    def _install(self, job: Rebuild) -> int:
        """Store a finished rebuild's table unless a lookup replaced (or dropped) the old one
        meanwhile; returns 1 if stored."""
        self._job = None
        key, new = job.old.key, job.new
        if key is None or new is None or self._tables.get(key) is not job.old:
            return 0
        self._tables[key] = new
        self._count_rebuild()
        return 1

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
        key: TableKey = (tenant, app, state.node, visits, state.running, state.width, bucket)
        table = self._tables.get(key)
        version = graph.version
        if table is None:
            table = self._new(graph, key, state, bucket)
        elif table.version != version:
            verdict = self._verdict(table, graph)
            if verdict == _REBUILD:
                self._due.pop(key, None)
                if self._job is not None and self._job.old is table:
                    self._job = None  # this lookup rebuilds it whole
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

    def _new(
        self, graph: PDGraph, key: TableKey, state: RunState, bucket: int | None
    ) -> StateTable:
        position = RunState(
            node=state.node,
            visits=key[3],
            running=state.running,
            elapsed_s=0.0,
            input_tokens=bucket_tokens(bucket),
            width=state.width,
        )
        table = self._tables[key] = build_table(graph, position, self.settings.samples)
        table.key = key
        self._count_rebuild()
        self._by_graph.setdefault((key[0], key[1]), {})[key] = None
        self.inline_rebuilds += 1
        if len(self._tables) > self.settings.max_tables:
            old, _ = self._tables.popitem(last=False)
            self._due.pop(old, None)
            self._by_graph.get((old[0], old[1]), {}).pop(old, None)
        return table

    def _count_rebuild(self) -> None:
        self.rebuilds += 1
        if self.on_rebuild is not None:
            self.on_rebuild()

    def _untabled(self, app: str, state: RunState, tenant: str) -> RankPoint:
        samples = self.source.remaining_demand(app, state, tenant=tenant, n=self.settings.samples)
        return point_of(np.sort(samples))


def _tabled(graph: PDGraph) -> bool:
    """Whether ``graph``'s app is answered from tables (it has a run that did not fail)."""
    return graph.runs != graph.failed_runs
