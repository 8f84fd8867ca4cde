"""Gittins ranks in budget seconds: the order of a rate-limited upstream's waiters.

Under a tokens-per-minute budget the scarce resource is tokens, not the provider's seconds: a
request of ``c`` tokens occupies ``c / (TPM / 60)`` seconds of budget, whatever its latency. So
a waiting request of run ``r`` is ranked by the Gittins index of ``r``'s remaining demand in
budget seconds (docs/theory.md, "Gittins under a token budget"):

    D = (c + F) / (TPM / 60),   rank = 1 / G(D),   G(D) = max_q P(D <= q) / E[min(D, q)]

where ``c`` is the request's own charge (prompt tokens + predicted output, what the budget takes)
and ``F`` the tokens of the stages the run's PDGraph predicts after the request's stage, drawn
by a Monte Carlo walk of the graph's transitions from the request's node and visit, each stage
drawing its fan-out width and, per call, prompt + output tokens from the node's sketches (calls
of other upstreams and tool stages cost no budget tokens). Attained service is 0: a request is
charged whole when it is granted, so what the run has done is in its position, not in ``D``.

A run with a deadline gets the policy's deadline treatment relative to its plain rank, as on
slots (:mod:`~hermes_sdk.server.budget_deadline`). The policy's starvation guard applies as for
slots (:class:`~hermes_sdk.policy.aging.AgingPolicy`:
the key adds ``arrival / slowdown_cap``); a request whose run is unknown and has no app ranks
after every ranked one (``inf``, first come first served among themselves).
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.pdgraph import PDGraph
from hermes_sdk.graph.records import END
from hermes_sdk.policy.aging import AgingPolicy
from hermes_sdk.policy.base import Policy, wrapped_policies
from hermes_sdk.policy.gittins import gittins_index_and_quantum
from hermes_sdk.server.budget import UpstreamBudget
from hermes_sdk.server.budget_deadline import DeadlineScale
from hermes_sdk.server.scheduler import Scheduler

N_PATHS: Final = 128
"""Monte Carlo paths per remaining-token distribution."""
POOL: Final = 64
"""Per-stage token draws kept per node (a path draws one of them uniformly)."""
MAX_STAGES: Final = 64
"""Longest walk after the request's stage (longer paths are truncated)."""
CACHE_SIZE: Final = 4096
STALE_FRACTION: Final = 0.2
"""A cached distribution is recomputed once its graph learned this fraction more runs..."""
MIN_STALE_RUNS: Final = 8
"""... or this many, whichever is larger (as the rank tables' default)."""

_Visits = tuple[tuple[str, int], ...]
_Key = tuple[str, str, str, _Visits]
"""(tenant, app, node, visits including the request's stage)."""


@dataclass(slots=True)
class _Queued:
    app: str | None
    node: str
    waiting: int = 0


def innermost(policy: Policy) -> Policy:
    """The policy inside any wrappers (aging, fairness): the one that ranks."""
    *_, last = wrapped_policies(policy)
    return last


def uses_budget_rank(policy: Policy) -> bool:
    """True for the Gittins family, whose budgeted waiters are ranked in budget seconds."""
    return innermost(policy).name.startswith("gittins")


def aging_of(policy: Policy) -> AgingPolicy | None:
    """The starvation guard among ``policy``'s wrappers, if any."""
    return next((p for p in wrapped_policies(policy) if isinstance(p, AgingPolicy)), None)


class BudgetRanker:
    """Ranks one budgeted upstream's waiters (``rank(run_key, waited_s, cost)``, seconds)."""

    def __init__(self, scheduler: Scheduler, upstream: str, budget: UpstreamBudget) -> None:
        self._scheduler = scheduler
        self._upstream = upstream
        self._budget = budget
        self._aging = aging_of(scheduler.policy)
        self._deadline = DeadlineScale.of(scheduler)
        self._queued: dict[Hashable, _Queued] = {}
        """run_key -> the app and node its requests wait for on this upstream."""
        self._cache: OrderedDict[_Key, tuple[int, NDArray[np.float64]]] = OrderedDict()

    @contextmanager
    def queued(
        self, run_key: Hashable, app: str | None, node: str, cost: float = 0.0
    ) -> Iterator[None]:
        """Say which app and graph node a run's request waits for while the block runs (its
        ``cost`` is passed to :meth:`rank` by the queue)."""
        entry = self._queued.get(run_key)
        if entry is None:
            entry = self._queued[run_key] = _Queued(app, node)
        entry.app, entry.node = app or entry.app, node
        entry.waiting += 1
        try:
            yield
        finally:
            entry.waiting -= 1
            if entry.waiting <= 0:
                self._queued.pop(run_key, None)

    def rank(self, run_key: Hashable | None, waited_s: float, cost: float) -> float:
        """Rank (seconds, lower first) of a request of ``cost`` tokens of run ``run_key``."""
        tpm = self._budget.tpm
        entry = self._queued.get(run_key)
        if tpm is None or not isinstance(run_key, tuple) or entry is None:
            return math.inf
        tenant, run_id = str(run_key[0]), str(run_key[1])
        app, node = entry.app, entry.node
        run = self._scheduler.run(tenant, run_id)
        now = self._scheduler.now_s()
        arrival_s = now - waited_s
        visits: dict[str, int] = {}
        if run is not None:
            app, arrival_s = run.app, run.arrival_s
            state = run.run_state(now)
            visits = dict(state.visits)
            if not (state.running and state.node == node):
                visits[node] = visits.get(node, 0) + 1
        else:
            visits[node] = 1
        if app is None:
            return math.inf
        graph = self._scheduler.registry.get(app, tenant)
        future = None if graph is None else self.future_tokens(graph, tenant, node, visits)
        rate = tpm / 60.0
        if future is None or future.size == 0:
            rank = cost / rate  # nothing learned: the request itself is all that is known
        else:
            index, _ = gittins_index_and_quantum((cost + future) / rate)
            rank = 1.0 / index
        if self._deadline is not None:  # the policy's deadline treatment, as on slots
            rank = self._deadline.apply(run_key, rank)
        if self._aging is not None:
            rank += self._aging.age_key(arrival_s, now)
        return rank

    def future_tokens(
        self, graph: PDGraph, tenant: str, node: str, visits: dict[str, int]
    ) -> NDArray[np.float64] | None:
        """Samples of this upstream's tokens the run spends after its stage at ``node`` (None:
        the graph has no complete run, or does not know the node)."""
        if graph.runs == graph.failed_runs or node not in graph.nodes:
            return None
        clipped = tuple(sorted((k, min(v, graph.max_visit)) for k, v in visits.items()))
        key: _Key = (tenant, graph.app, node, clipped)
        hit = self._cache.get(key)
        allowance = max(STALE_FRACTION * graph.runs, MIN_STALE_RUNS)
        if hit is not None and graph.version - hit[0] <= allowance:
            self._cache.move_to_end(key)
            return hit[1]
        out = _walk(graph, self._upstream, node, visits)
        self._cache[key] = (graph.version, out)
        self._cache.move_to_end(key)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return out


def _stage_pool(
    graph: PDGraph, upstream: str, node: str, rng: np.random.Generator
) -> NDArray[np.float64]:
    """:data:`POOL` draws of the budget tokens of one stage at ``node`` (zeros for a tool)."""
    if node not in graph.nodes:
        return np.zeros(POOL)
    stats = graph.node_stats(node)
    if stats.kind != "llm" or stats.backend not in (None, upstream):
        return np.zeros(POOL)
    widths = (
        np.maximum(stats.width.sample(rng, POOL).astype(np.int64), 1)
        if len(stats.width)
        else np.ones(POOL, dtype=np.int64)
    )
    total = int(widths.sum())
    per_call = stats.input_tokens.sample(rng, total) + stats.output_tokens.sample(rng, total)
    ends = np.cumsum(widths)
    sums = np.add.reduceat(per_call, ends - widths)
    return np.asarray(sums, dtype=np.float64)


def _walk(graph: PDGraph, upstream: str, node: str, visits: dict[str, int]) -> NDArray[np.float64]:
    """:data:`N_PATHS` samples of the tokens after the stage at ``node`` (seeded by position)."""
    rng = np.random.default_rng(
        zlib.crc32(f"{node}|{sorted(visits.items())}".encode()) ^ graph.version
    )
    pools: dict[str, NDArray[np.float64]] = {}
    rows: dict[tuple[str, int], tuple[list[str], NDArray[np.float64]]] = {}
    out = np.zeros(N_PATHS)
    for i in range(N_PATHS):
        counts = dict(visits)
        cur = node
        for _ in range(MAX_STAGES):
            visit = min(counts.get(cur, 1), graph.max_visit)
            row = rows.get((cur, visit))
            if row is None:
                found = graph.transition_counts(cur, visit)
                targets = list(found)
                cum = np.cumsum([found[t] for t in targets], dtype=np.float64)
                row = rows[(cur, visit)] = (targets, cum / cum[-1] if cum.size else cum)
            targets, cum = row
            if not targets:
                break
            cur = targets[
                min(int(np.searchsorted(cum, rng.random(), side="right")), len(targets) - 1)
            ]
            if cur == END:
                break
            counts[cur] = counts.get(cur, 0) + 1
            pool = pools.get(cur)
            if pool is None:
                pool = pools[cur] = _stage_pool(graph, upstream, cur, rng)
            out[i] += pool[int(rng.integers(POOL))]
    return out
