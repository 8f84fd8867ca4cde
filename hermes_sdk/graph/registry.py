"""GraphRegistry: every app's PDGraph per tenant, persisted through a Store; a DemandModel.

On construction the registry replays every stored path, so a restarted process (or another
scheduler replica sharing a Redis store) sees the same graphs. ``observe`` validates a path,
appends it to the store (durable) and only then folds it into the graph, so an acknowledged path
is never lost and a rejected one is never stored.

Unknown apps (no graph, or a graph with no runs) are answered from the tenant's pooled prior:
total run demand pooled over all the tenant's apps, conditioned on ``state.elapsed_s`` (the only
attained-service figure a ``RunState`` carries); see :mod:`hermes_sdk.graph.prior`.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.pdgraph import PDGraph, check_query
from hermes_sdk.graph.prior import PooledPrior
from hermes_sdk.graph.rank_tables import RankTables, RankTableSettings
from hermes_sdk.graph.records import RunPath, RunState, check_name
from hermes_sdk.store.base import Store, append_all

log = logging.getLogger(__name__)

REPLAY_BATCH = 1000
"""Stored paths learned per batch while a registry replays its store."""


class GraphRegistry:
    """Thread-safe owner of all apps' graphs; implements the DemandModel protocol."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        window: int = 1000,
        half_life_s: float | None = None,
        max_visit: int = 8,
        max_stale_fraction: float = 0.0,
        rank_tables: RankTableSettings | None = RankTableSettings(),  # noqa: B008 (frozen)
    ) -> None:
        PDGraph(
            "_check",
            window=window,
            half_life_s=half_life_s,
            max_visit=max_visit,
            max_stale_fraction=max_stale_fraction,
        )
        self.store = store
        self._window, self._half_life_s, self._max_visit = window, half_life_s, max_visit
        self._max_stale_fraction = max_stale_fraction
        self._lock = threading.RLock()
        self._graphs: dict[tuple[str, str], PDGraph] = {}
        self._priors: dict[str, PooledPrior] = {}
        self._writers: dict[tuple[str, str], threading.Lock] = {}
        self.loaded_paths = 0
        self.rank_tables: RankTables | None = (
            None if rank_tables is None else RankTables(self, rank_tables)
        )
        """Per-state rank tables over these graphs (None: policies rank by Monte Carlo)."""
        if store is not None:
            self._replay(store)

    def _replay(self, store: Store) -> None:
        skipped = 0
        batch: list[RunPath] = []
        for path in store.load_paths():
            batch.append(path)
            if len(batch) == REPLAY_BATCH:
                skipped += self._replay_batch(batch)
                batch = []
        skipped += self._replay_batch(batch)
        if skipped or store.corrupt_rows:
            log.warning(
                "graph rebuild skipped %d invalid paths and %d corrupt rows",
                skipped,
                store.corrupt_rows,
            )

    def _replay_batch(self, batch: list[RunPath]) -> int:
        """Learn one batch of the replay; returns how many paths were skipped."""
        refused = self.fold(batch)
        for path, exc in refused:  # stored by an older, laxer version: skip, keep going
            log.warning("skipping stored path of app %r: %s", path.app, exc)
        self.loaded_paths += len(batch) - len(refused)
        return len(refused)

    def prior(self, tenant: str = "default") -> PooledPrior:
        """The tenant's pooled prior of total run demand (created on first use)."""
        with self._lock:
            prior = self._priors.get(tenant)
            if prior is None:
                prior = self._priors[tenant] = PooledPrior()
            return prior

    def _graph(self, app: str, tenant: str) -> PDGraph:
        key = (tenant, app)
        graph = self._graphs.get(key)
        if graph is None:
            check_name(app, "app")
            check_name(tenant, "tenant")
            graph = PDGraph(
                app,
                window=self._window,
                half_life_s=self._half_life_s,
                max_visit=self._max_visit,
                prior=self.prior(tenant),
                max_stale_fraction=self._max_stale_fraction,
            )
            self._graphs[key] = graph
        return graph

    def graph(self, app: str, tenant: str = "default") -> PDGraph:
        """The graph of ``app`` for ``tenant``, created empty if needed."""
        with self._lock:
            return self._graph(app, tenant)

    def get(self, app: str, tenant: str = "default") -> PDGraph | None:
        """The graph of ``app`` for ``tenant`` or None if it was never created."""
        with self._lock:
            return self._graphs.get((tenant, app))

    def apps(self, tenant: str = "default") -> list[str]:
        """Sorted names of the tenant's apps that have a graph."""
        with self._lock:
            return sorted(app for (t, app) in self._graphs if t == tenant)

    def tenants(self) -> list[str]:
        """Sorted names of tenants with at least one graph."""
        with self._lock:
            return sorted({t for (t, _) in self._graphs})

    def observe(self, path: RunPath) -> PDGraph:
        """Validate, store durably, then learn ``path``; returns the app's graph."""
        if not isinstance(path, RunPath):
            raise GraphError(f"observe() needs a RunPath, got {type(path).__name__}")
        with self._lock:
            graph = self._graph(path.app, path.tenant)
            writer = self._writers.setdefault((path.tenant, path.app), threading.Lock())
        # Per-app writer lock: the store and the graph see one app's paths in the same order
        # (so a rebuild is identical) while other apps, and queries, are not held up by the
        # store's fsync.
        with writer:
            graph.validate(path)
            if self.store is not None:
                self.store.append_path(path)
            graph.observe(path)
        return graph

    def observe_many(self, paths: Sequence[RunPath]) -> list[tuple[RunPath, GraphError]]:
        """Validate, store durably in one batch write, then learn ``paths`` in their order.

        The batched form of :meth:`observe` (one store transaction / pipeline for all of them,
        see :func:`~hermes_sdk.store.base.append_all`). A path its graph rejects is neither
        stored nor learned: it is returned with its error, and the others go on. Raises
        :class:`~hermes_sdk.errors.StoreError` if the write fails (then nothing is learned).
        """
        rejected: list[tuple[RunPath, GraphError]] = []
        keys: set[tuple[str, str]] = set()
        graphs: list[tuple[RunPath, PDGraph]] = []
        with self._lock:
            for path in paths:
                try:
                    if not isinstance(path, RunPath):
                        raise GraphError(f"observe() needs a RunPath, got {type(path).__name__}")
                    graphs.append((path, self._graph(path.app, path.tenant)))
                except GraphError as exc:
                    rejected.append((path, exc))
                    continue
                keys.add((path.tenant, path.app))
            writers = [self._writers.setdefault(k, threading.Lock()) for k in sorted(keys)]
        with ExitStack() as held:  # sorted order: no deadlock with observe() or another batch
            for writer in writers:
                held.enter_context(writer)
            per_graph: dict[int, tuple[PDGraph, list[RunPath]]] = {}
            for path, graph in graphs:
                per_graph.setdefault(id(graph), (graph, []))[1].append(path)
            errors: dict[int, GraphError] = {}  # id(path) -> why its graph refuses it
            for graph, mine in per_graph.values():
                for path, error in zip(mine, graph.validate_many(mine), strict=True):
                    if error is not None:
                        errors[id(path)] = error
            valid: list[tuple[RunPath, PDGraph]] = []
            for path, graph in graphs:
                error = errors.get(id(path))
                if error is not None:
                    rejected.append((path, error))
                    continue
                valid.append((path, graph))
            if self.store is not None and valid:
                append_all(self.store, [path for path, _ in valid])
            self._learn(valid, rejected)
        return rejected

    def fold(self, paths: Sequence[RunPath]) -> list[tuple[RunPath, GraphError]]:
        """Learn ``paths`` that are already stored (a replay, another replica's, a write made
        elsewhere): each graph's in one :meth:`PDGraph.observe_many`, the same graphs and pooled
        priors, bit for bit, as :meth:`PDGraph.observe` of each in turn. Nothing is written.
        Returns the paths a graph refused, with why (the others are learned)."""
        refused: list[tuple[RunPath, GraphError]] = []
        valid: list[tuple[RunPath, PDGraph]] = []
        with self._lock:
            for path in paths:
                try:
                    valid.append((path, self._graph(path.app, path.tenant)))
                except GraphError as exc:
                    refused.append((path, exc))
        self._learn(valid, refused, checked=False)
        return refused

    @staticmethod
    def _learn(
        valid: list[tuple[RunPath, PDGraph]],
        rejected: list[tuple[RunPath, GraphError]],
        *,
        checked: bool = True,
    ) -> None:
        """Learn stored paths, each graph's in one :meth:`PDGraph.observe_many` (their pooled
        prior samples added in the paths' order, as one by one); ``checked``: validated since
        their graph last changed (else each is validated as it is learned)."""
        groups: dict[int, tuple[PDGraph, list[int]]] = {}
        for i, (_, graph) in enumerate(valid):
            groups.setdefault(id(graph), (graph, []))[1].append(i)
        samples: list[tuple[int, float, PooledPrior]] = []
        for graph, indices in groups.values():
            prior: list[tuple[int, float]] = []
            batch = [valid[i][0] for i in indices]
            refused = graph.observe_many(batch, checked=checked, prior=prior)
            for j, exc in refused:  # e.g. the batch together crosses a node limit
                path = valid[indices[j]][0]
                if checked:
                    log.warning("stored path of app %r not learned: %s", path.app, exc)
                rejected.append((path, exc))
            samples.extend((indices[j], service_s, graph.prior) for j, service_s in prior)
        samples.sort(key=lambda s: s[0])
        for _, service_s, pooled in samples:
            pooled.add(service_s)

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """``n`` samples of remaining service seconds (DemandModel); pooled prior if unknown."""
        return self._remaining(app, state, tenant, n, latency=False)

    def remaining_latency(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """``n`` samples of remaining wall-clock seconds (:meth:`PDGraph.remaining_latency`).

        An unknown app answers from the pooled prior of total service (an upper bound).
        """
        return self._remaining(app, state, tenant, n, latency=True)

    def _remaining(
        self, app: str, state: RunState, tenant: str, n: int, *, latency: bool
    ) -> NDArray[np.float64]:
        with self._lock:
            graph = self._graphs.get((tenant, app))
            prior = self.prior(tenant) if graph is None else None
        if graph is not None:
            if latency:
                return graph.remaining_latency(state, n=n)
            return graph.remaining_demand(state, n=n)
        assert prior is not None
        check_query(state, n)
        rng = np.random.default_rng(zlib.crc32(f"{tenant}\0{app}\0{state!r}".encode()))
        out = prior.remaining(state.elapsed_s, n, rng)
        out.setflags(write=False)
        return out

    def close(self) -> None:
        """Close the store (graphs stay readable in memory)."""
        with self._lock:
            if self.store is not None:
                self.store.close()
