"""When will a running app next use a backend? Monte Carlo over its PDGraph.

:func:`times_to_backends` walks ``n`` sampled continuations of an app from its :class:`RunState`
(next stage drawn from ``next_stage_probs``, stage latency drawn from the node's sketches) and
records, per backend, the seconds until the first stage on that backend *starts*; ``inf`` when the
walk ends (END, horizon, stage limit) first. Walkers in the same state are advanced together, so
the cost is one ``next_stage_probs`` call per distinct state per step, plus numpy draws.
:func:`need_probability` combines apps: P(backend needed within w) = 1 - prod(1 - p_app(w)).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.records import END, RunState

FloatArray = NDArray[np.float64]


class Distribution(Protocol):
    """A learned distribution as sorted values with cumulative weights (a graph sketch)."""

    @property
    def values(self) -> FloatArray:
        """Samples sorted ascending."""
        ...

    @property
    def cum_weights(self) -> FloatArray:
        """Cumulative normalised weights (last = 1)."""
        ...


class NodeStatsView(Protocol):
    """What the forecast reads from ``PDGraph.node_stats(node)``."""

    @property
    def backend(self) -> str | None:
        """Backend the node's calls go to."""
        ...

    @property
    def service_s(self) -> Distribution:
        """Service seconds of one call of the node."""
        ...

    @property
    def width(self) -> Distribution:
        """Fan-out width of one visit (parallel calls)."""
        ...


class StageGraph(Protocol):
    """The slice of the PDGraph API the forecast needs (``hermes_sdk.graph.PDGraph`` fits)."""

    @property
    def version(self) -> int:
        """Changes whenever the graph learns, so forecasts can be cached by it."""
        ...

    def next_stage_probs(self, state: RunState) -> dict[str, float]:
        """P(next node | state), including ``END``."""
        ...

    def node_stats(self, node: str) -> NodeStatsView:
        """Learned statistics of a node."""
        ...


def _advance(state: RunState, node: str, max_visit: int) -> RunState:
    """State after entering ``node`` (visit counts capped at ``max_visit``)."""
    counts = dict(state.visits)
    counts[node] = min(counts.get(node, 0) + 1, max_visit)
    return RunState(node=node, visits=tuple(sorted(counts.items())))


def node_backends(graph: StageGraph, node: str) -> frozenset[str]:
    """Backends a node's stage uses; a composite node ``a|b`` uses its parts' backends too."""
    found: set[str] = set()
    for name in {node, *node.split("|")}:
        try:
            backend = graph.node_stats(name).backend
        except (KeyError, ValueError):
            continue
        if backend is not None:
            found.add(backend)
    return frozenset(found)


def _inverse_cdf(dist: Distribution, u: FloatArray) -> FloatArray:
    idx = np.searchsorted(dist.cum_weights, u, side="left")
    return dist.values[np.minimum(idx, dist.values.size - 1)]


def stage_latency_s(graph: StageGraph, node: str, rng: np.random.Generator, n: int) -> FloatArray:
    """``n`` draws of a stage's wall time: the longest of its ``width`` parallel calls.

    The maximum of ``w`` iid calls is drawn exactly by inverting the call-time CDF at
    ``u ** (1 / w)``.
    """
    try:
        stats = graph.node_stats(node)
    except (KeyError, ValueError):  # a node the graph has not learned yet
        return np.zeros(n)
    if stats.service_s.values.size == 0:
        return np.zeros(n)
    u = rng.random(n)
    if stats.width.values.size:
        width = np.maximum(_inverse_cdf(stats.width, rng.random(n)), 1.0)
        u = u ** (1.0 / width)
    return np.asarray(_inverse_cdf(stats.service_s, u), dtype=np.float64)


LatencySampler = Callable[[str, np.random.Generator, int], FloatArray | None]
"""``(node, rng, n) -> n`` observed stage wall times, or None when too few are known."""


def _latency(
    graph: StageGraph,
    latency: LatencySampler | None,
    node: str,
    rng: np.random.Generator,
    n: int,
) -> FloatArray:
    drawn = latency(node, rng, n) if latency is not None else None
    return drawn if drawn is not None else stage_latency_s(graph, node, rng, n)


def _residual_s(latency_s: FloatArray, elapsed_s: float, rng: np.random.Generator) -> FloatArray:
    """Remaining time of a running stage: draws conditioned on exceeding ``elapsed_s``."""
    above = latency_s[latency_s > elapsed_s]
    if above.size == 0:
        return np.zeros_like(latency_s)
    return rng.choice(above, size=latency_s.size) - elapsed_s


def times_to_backends(
    graph: StageGraph,
    state: RunState,
    backends: Iterable[str],
    *,
    n: int = 1000,
    horizon_s: float = math.inf,
    max_stages: int = 64,
    max_visit: int = 8,
    rng: np.random.Generator | None = None,
    latency: LatencySampler | None = None,
    stage_end_out: FloatArray | None = None,
) -> dict[str, FloatArray]:
    """Per backend, ``n`` sampled seconds until the app's next stage on it starts (``inf``: never).

    ``stage_end_out`` (length ``n``), if given, receives each walk's end time of the stage
    running now (0 between stages), so a caller can condition later on that stage still running.

    ``latency(node, rng, n)`` may supply observed stage wall times (queueing included); when it
    returns None the graph's call times are used (:func:`stage_latency_s`).

    A stage running now on a backend counts as 0 for it. Walks stop at END, after ``max_stages``
    stages, or once a walk passes ``horizon_s`` beyond the end of the stage running now (a
    planner re-forecasts at that stage's end, so it only needs ``horizon_s`` = its cold start).
    """
    rng = rng or np.random.default_rng()
    wanted = frozenset(backends)
    out = {b: np.full(n, math.inf) for b in wanted}
    if not wanted or n <= 0:
        return out
    t_s = np.zeros(n)
    limit_s = np.full(n, horizon_s)
    start = state
    if state.node not in ("START", END):
        using = node_backends(graph, state.node) & wanted
        if state.running:
            for b in using:
                out[b][:] = 0.0
            lat = _latency(graph, latency, state.node, rng, n)
            t_s += _residual_s(lat, state.elapsed_s, rng)
            limit_s += t_s
            start = RunState(node=state.node, visits=state.visits)
    if stage_end_out is not None:
        stage_end_out[:] = t_s
    uses: dict[str, frozenset[str]] = {}
    groups: dict[RunState, NDArray[np.intp]] = {start: np.arange(n)}
    for _ in range(max_stages):
        nxt: defaultdict[RunState, list[NDArray[np.intp]]] = defaultdict(list)
        for st, idx in groups.items():
            probs = graph.next_stage_probs(st)
            names = [k for k, v in probs.items() if v > 0.0]
            if not names:
                continue
            p = np.array([probs[k] for k in names], dtype=np.float64)
            choice = rng.choice(len(names), size=idx.size, p=p / p.sum())
            for j, node in enumerate(names):
                sel = idx[choice == j]
                if sel.size == 0 or node == END:
                    continue
                hit = uses.get(node)
                if hit is None:
                    hit = uses[node] = node_backends(graph, node) & wanted
                for b in hit:
                    arr = out[b]
                    first = sel[np.isinf(arr[sel])]
                    arr[first] = t_s[first]
                t_s[sel] += _latency(graph, latency, node, rng, sel.size)
                keep = sel[t_s[sel] <= limit_s[sel]]
                if keep.size:
                    nxt[_advance(st, node, max_visit)].append(keep)
        groups = {st: np.concatenate(parts) for st, parts in nxt.items()}
        if not groups:
            break
    return out


def cdf_at(samples_s: FloatArray, window_s: float) -> float:
    """Empirical P(T <= window_s) of sampled times."""
    if samples_s.size == 0:
        return 0.0
    return float(np.count_nonzero(samples_s <= window_s)) / samples_s.size


def need_probability(per_app_samples_s: Iterable[FloatArray], window_s: float) -> float:
    """P(at least one app needs the backend within ``window_s``) = 1 - prod(1 - p_app)."""
    miss = 1.0
    for samples in per_app_samples_s:
        miss *= 1.0 - cdf_at(samples, window_s)
    return 1.0 - miss


def earliest_crossing_s(
    per_app_samples_s: Mapping[str, FloatArray], window_s: float, threshold: float
) -> float:
    """Smallest delay d >= 0 with P(need within d + window_s) >= threshold (``inf`` if none).

    This is when a planner, learning nothing new meanwhile, should start warming.
    """
    sorted_apps = [np.sort(s[np.isfinite(s)]) for s in per_app_samples_s.values() if s.size]
    totals = [s.size for s in per_app_samples_s.values() if s.size]
    candidates = np.unique(np.concatenate([s for s in sorted_apps] + [np.zeros(1)]))
    if candidates.size == 0:
        return math.inf
    miss = np.ones(candidates.size)
    for s, total in zip(sorted_apps, totals, strict=True):
        miss *= 1.0 - np.searchsorted(s, candidates, side="right") / total
    hit = np.nonzero(1.0 - miss >= threshold - 1e-12)[0]
    if hit.size == 0:
        return math.inf
    return max(0.0, float(candidates[hit[0]]) - window_s)


def time_to_backend(
    graph: StageGraph,
    state: RunState,
    backend: str,
    *,
    n: int = 1000,
    horizon_s: float = math.inf,
    rng: np.random.Generator | None = None,
) -> FloatArray:
    """``n`` sampled seconds until the app's next stage on ``backend`` starts (``inf``: never)."""
    return times_to_backends(graph, state, [backend], n=n, horizon_s=horizon_s, rng=rng)[backend]
