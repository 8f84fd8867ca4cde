"""KV-cache retention: how long to keep a run's prefix after its LLM call, from the PDGraph.

When a run's LLM call ends (and a tool or retriever call starts), its prefix KV cache is worth
keeping only if the run comes back soon. Let ``G`` be the seconds until the run's next LLM call
on the same backend (``inf`` if it never makes one) and ``c`` the cost ratio: holding the prefix
for one second costs ``c`` times recomputing it once (``1/c`` is the break-even hold). Keeping
it for ``T`` seconds costs ``c * E[min(G, T)]`` and saves ``r`` recomputes (the calls that read
it: the node's mean fan-out width) with probability ``P(G <= T)``, so the hint is

    T* = argmax_T  r P(G <= T) - c * E[min(G, T)]      (keep only if the maximum is > 0)

the ski-rental rule the prewarm keep-alive uses (:mod:`hermes_sdk.prewarm.keepalive`). ``G``'s
distribution comes from the PDGraph: Monte Carlo walks from the run's state after the call,
through the learned transitions and the learned service of the tool stages in between.
The hint is sent as ``X-Hermes-Retain-S`` (Hermes' gateway and engines) or Dynamo's
``nvext.cache_control`` (see :mod:`hermes_sdk.client.encodings`).

A cache that can rank its entries itself takes ``G``'s law instead (:meth:`GraphRetention.
reuse_law`) and evicts the entry of lowest reuse density at its age, reused tokens per held
token-second (:mod:`hermes_sdk.prewarm.reuse_law`): the same trade as ``c`` but with the
cache's own price of space, which is what pays at every cache size. The TTL rule is that
rule's static form, with ``c`` standing in for the density of the entries the cache evicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.pdgraph import PDGraph
from hermes_sdk.graph.records import END, RunState
from hermes_sdk.prewarm.reuse_law import ReuseLaw

DEFAULT_CANDIDATES_S: Final[tuple[float, ...]] = tuple(round(0.25 * 1.5**i, 3) for i in range(24))
"""Retention times tried, seconds (0.25 s to about 2.6 hours, geometric)."""
MAX_HOPS: Final = 16
"""Stages walked before a run that has not called the LLM again counts as never returning."""


def retention_s(
    gaps_s: NDArray[np.float64] | Sequence[float],
    cost_ratio_per_s: float,
    candidates_s: Sequence[float] = DEFAULT_CANDIDATES_S,
    reads: float = 1.0,
) -> float:
    """Seconds to keep a prefix given samples of the gap to its next use (``inf``: none), each
    return read by ``reads`` calls (each saving one recompute).

    Maximises ``reads * P(G <= T) - cost_ratio_per_s * E[min(G, T)]`` over ``candidates_s``; 0
    when no candidate beats not keeping (the run likely ends, or returns too late to pay).
    """
    if not cost_ratio_per_s >= 0:
        raise ValueError(f"cost_ratio_per_s must be >= 0, got {cost_ratio_per_s!r}")
    gaps = np.asarray(gaps_s, dtype=np.float64)
    if gaps.size == 0:
        return 0.0
    ts = np.asarray(candidates_s, dtype=np.float64)[:, None]
    p_back = (gaps[None, :] <= ts).mean(axis=1)
    hold = np.minimum(gaps[None, :], ts).mean(axis=1)
    gain = reads * p_back - cost_ratio_per_s * hold
    best = int(np.argmax(gain))
    return float(ts[best, 0]) if gain[best] > 1e-12 else 0.0


def next_llm_gaps(
    graph: PDGraph,
    state: RunState,
    backend: str | None,
    n: int,
    rng: np.random.Generator,
    *,
    same_node: bool = True,
) -> NDArray[np.float64]:
    """``n`` samples of the seconds from the end of ``state.node``'s call until the run calls
    that node again (``same_node``: the conversation continues with this prefix) or, without
    ``same_node``, any LLM node on ``backend`` (any backend if None); ``inf`` where the walk
    ends first.

    Each walk draws the next node from the learned transitions (``next_stage_probs``) and adds
    the learned stage service of every stage passed that is not the return (tools, other LLM
    calls).
    """
    probs_memo: dict[RunState, tuple[list[str], NDArray[np.float64]]] = {}
    stats_memo: dict[str, tuple[bool, NDArray[np.float64]]] = {}

    def step(at: RunState) -> tuple[list[str], NDArray[np.float64]]:
        hit = probs_memo.get(at)
        if hit is None:
            probs = graph.next_stage_probs(at)
            hit = probs_memo[at] = (list(probs), np.cumsum(list(probs.values())))
        return hit

    def node(name: str) -> tuple[bool, NDArray[np.float64]]:
        hit = stats_memo.get(name)
        if hit is None:
            st = graph.node_stats(name)
            if same_node:
                returns = name == state.node
            else:
                returns = st.kind == "llm" and (backend is None or st.backend in (None, backend))
            drawn = st.stage_service_s.sample(rng, 256) if len(st.stage_service_s) else None
            hit = stats_memo[name] = (returns, drawn if drawn is not None else np.zeros(1))
        return hit

    out = np.full(n, math.inf)
    for i in range(n):
        gap = 0.0
        at = RunState(state.node, state.visits)
        for _ in range(MAX_HOPS):
            names, cum = step(at)
            if not names:
                break
            nxt = names[min(int(np.searchsorted(cum, rng.random() * cum[-1])), len(names) - 1)]
            if nxt == END or nxt not in graph.nodes:
                break
            returns, service = node(nxt)
            if returns:
                out[i] = gap
                break
            gap += float(service[int(rng.integers(service.size))])
            visits = dict(at.visits)
            visits[nxt] = visits.get(nxt, 0) + 1
            at = RunState(nxt, tuple(sorted(visits.items())))
    return out


def remaining_llm_calls(
    graph: PDGraph, state: RunState, n: int = 64, rng: np.random.Generator | None = None
) -> float:
    """Expected LLM calls the run makes after ``state.node``'s stage (its mean fan-out width per
    LLM stage), from ``n`` walks through the learned transitions; 0 for an unknown graph node."""
    gen = rng if rng is not None else np.random.default_rng(0)
    widths: dict[str, float] = {}
    total = 0.0
    for _ in range(n):
        at = RunState(state.node, state.visits)
        for _ in range(MAX_HOPS):
            probs = graph.next_stage_probs(at)
            if not probs:
                break
            names = list(probs)
            cum = np.cumsum(list(probs.values()))
            nxt = names[min(int(np.searchsorted(cum, gen.random() * cum[-1])), len(names) - 1)]
            if nxt == END or nxt not in graph.nodes:
                break
            if nxt not in widths:
                st = graph.node_stats(nxt)
                widths[nxt] = (st.width.mean() or 1.0) if st.kind == "llm" else 0.0
            total += widths[nxt]
            visits = dict(at.visits)
            visits[nxt] = visits.get(nxt, 0) + 1
            at = RunState(nxt, tuple(sorted(visits.items())))
    return total / n


class RetentionPolicy(Protocol):
    """Decides the retention hint when a run's LLM stage ends (seconds; None: no hint)."""

    name: str

    def retain_s(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> float | None:
        """Seconds to keep the run's prefix; 0: do not keep; None: no hint (plain LRU)."""
        ...

    def reuse_law(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> ReuseLaw | None:
        """Law of the seconds until the run reuses the prefix, for a cache that evicts by
        reuse density; None: use :meth:`retain_s`."""
        ...


@dataclass(frozen=True, slots=True)
class NoRetention:
    """No hint: the cache's own LRU decides."""

    name: str = "lru"

    def retain_s(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> float | None:
        """Always None."""
        return None

    def reuse_law(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> ReuseLaw | None:
        """None: this policy hints seconds only."""
        return None


@dataclass(frozen=True, slots=True)
class FixedTTL:
    """Every prefix is kept ``ttl_s`` seconds (what TTL-retention routers do)."""

    ttl_s: float
    name: str = "ttl"

    def retain_s(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> float | None:
        """Always ``ttl_s``."""
        return self.ttl_s

    def reuse_law(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> ReuseLaw | None:
        """None: this policy hints seconds only."""
        return None


class GraphLookup(Protocol):
    """What :class:`GraphRetention` needs of a registry: the app's graph, if any."""

    def get(self, app: str, tenant: str = "default") -> PDGraph | None: ...


class GraphRetention:
    """The PDGraph rule: :func:`retention_s` over :func:`next_llm_gaps` of the run's state, and
    (``value_eviction``) the law of those gaps for a cache that evicts by reuse density.

    Decisions are cached per (app, tenant, state, backend) and recomputed once the graph has
    learned ``refresh`` more runs (or grown 10%). Without a graph of at least ``min_runs`` runs
    (or for an unknown node) no hint is given, so the cache falls back to LRU.
    """

    def __init__(
        self,
        registry: GraphLookup,
        cost_ratio_per_s: float = 0.01,
        *,
        n: int = 64,
        seed: int = 0,
        candidates_s: Sequence[float] = DEFAULT_CANDIDATES_S,
        refresh: int = 10,
        min_runs: int = 10,
        value_eviction: bool = True,
    ) -> None:
        self.name = "pdgraph" if value_eviction else "pdgraph_ttl"
        self.value_eviction = value_eviction
        self.registry = registry
        self.cost_ratio_per_s = cost_ratio_per_s
        self.n = n
        self.candidates_s = tuple(candidates_s)
        self.refresh = refresh
        self.min_runs = min_runs
        self._rng = np.random.default_rng(seed)
        self._cache: dict[tuple[str, str, RunState, str | None], tuple[int, float, ReuseLaw]] = {}

    def retain_s(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> float | None:
        """Seconds to keep the run's prefix after the call that ended in ``state``."""
        hit = self._decide(app, tenant, state, backend)
        return None if hit is None else hit[1]

    def reuse_law(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> ReuseLaw | None:
        """Law of the seconds until the run calls ``state.node`` again (None without a learned
        graph, or when ``value_eviction`` is off)."""
        if not self.value_eviction:
            return None
        hit = self._decide(app, tenant, state, backend)
        return None if hit is None else hit[2]

    def _decide(
        self, app: str, tenant: str, state: RunState, backend: str | None
    ) -> tuple[int, float, ReuseLaw] | None:
        graph = self.registry.get(app, tenant)
        if graph is None or graph.runs < self.min_runs or state.node not in graph.nodes:
            return None
        key = (app, tenant, state, backend)
        hit = self._cache.get(key)
        if hit is not None and graph.runs - hit[0] < max(self.refresh, 0.1 * graph.runs):
            return hit
        gaps = next_llm_gaps(graph, state, backend, self.n, self._rng)
        reads = max(graph.node_stats(state.node).width.mean() or 1.0, 1.0)
        value = retention_s(gaps, self.cost_ratio_per_s, self.candidates_s, reads)
        law = ReuseLaw.from_samples(gaps, reads)
        hit = self._cache[key] = (graph.runs, value, law)
        return hit
