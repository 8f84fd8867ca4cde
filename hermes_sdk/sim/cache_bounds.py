"""Offline bounds on the prefill any eviction policy could save on a recorded access trace.

A prefix KV cache of ``C`` tokens (:mod:`hermes_sdk.sim.kv_cache`) sees two kinds of events:
a *store* of ``s`` tokens under a key (a run's context when its LLM stage ends; it replaces the
key's earlier entry) and a *read* of a ``p``-token prompt under a key (a call dispatched), which
saves ``min(s, p)`` tokens if the key's entry has stayed cached since its store. A clairvoyant
cache decides, per stored entry, until which of its reads to keep it, subject to holding at most
``C`` tokens at every event. Each read ``j`` of an entry defines a *segment*: the events from the
previous read (or the store) to read ``j``, of size ``s`` and value ``min(s, p_j)``; read ``j``
hits only if segments ``1..j`` of its entry are all kept (nothing re-inserts an entry on a miss).
The optimum ``OPT`` is an integer program over segments (a knapsack over time with chains):

    max sum_k v_k x_k   s.t.  sum_{k live at e} s_k x_k <= C  for every event e,
                              x_k <= x_prev(k),  x_k in {0, 1}.

This is the interval formulation of Berger, Beckmann and Harchol-Balter, "Practical Bounds on
Optimal Caching with Variable Object Sizes" (SIGMETRICS 2018; FOO), with the chain constraint the
simulated cache adds. Bounds, all in tokens of prefill saved:

- :func:`pfoo_upper` (PFOO-U): the capacity constraint relaxed to hold on average over the trace
  (total size x length of the kept segments <= ``C`` x the trace's length, in seconds and in
  events: both are valid, the smaller is returned), chains dropped: a fractional knapsack solved
  greedily by value per size x length. ``OPT <= PFOO-U``.
- :func:`pfoo_lower` (PFOO-L): segments taken greedily in ascending size x length (from the
  entry's store, so an entry's earlier segments come first) whenever their entry's previous
  segment was taken and they fit at every event they span: a feasible schedule, so
  ``PFOO-L <= OPT``.
- :func:`offline_optimum`: the integer program itself (HiGHS through :func:`scipy.optimize.milp`,
  with a time limit), returning its best schedule's value and its proven upper bound (its LP
  relaxation at worst); equal when solved to optimality.

Every online policy run on the same trace saves at most ``OPT`` (its cache contents are one
feasible schedule). A policy changes the trace's timing (a hit shortens the call), so the bound
is that of the trace it was computed on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

DEFAULT_TIME_LIMIT_S: Final = 60.0
"""Wall seconds the integer program may take before its best schedule and bound are returned."""


@dataclass(slots=True)
class AccessTrace:
    """The stores and reads one cache saw, in the order they happened."""

    times_s: list[float] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    """Tokens stored (a store) or prompt tokens (a read)."""
    is_store: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def store(self, t_s: float, key: str, tokens: int) -> None:
        """``tokens`` of ``key``'s prefix offered to the cache at ``t_s`` seconds."""
        self._append(t_s, key, tokens, True)

    def read(self, t_s: float, key: str, prompt_tokens: int) -> None:
        """A ``prompt_tokens``-long prompt of ``key`` looked up at ``t_s`` seconds."""
        self._append(t_s, key, prompt_tokens, False)

    def _append(self, t_s: float, key: str, tokens: int, store: bool) -> None:
        self.times_s.append(t_s)
        self.keys.append(key)
        self.tokens.append(tokens)
        self.is_store.append(store)


@dataclass(frozen=True, slots=True)
class Segments:
    """The reads that could hit, one per row: the events (``first`` .. ``last`` inclusive) and
    seconds (``start_s`` .. ``end_s``) the entry must stay cached for, its ``size`` (tokens),
    the ``value`` of the read (tokens saved), ``prev`` (row of the entry's previous segment, -1
    for the first) and ``from_store`` (events from the entry's store to this read, inclusive).
    ``events``: the trace's length; ``span_s``: its seconds from first to last event."""

    first: NDArray[np.int64]
    last: NDArray[np.int64]
    start_s: NDArray[np.float64]
    end_s: NDArray[np.float64]
    size: NDArray[np.int64]
    value: NDArray[np.int64]
    prev: NDArray[np.int64]
    from_store: NDArray[np.int64]
    events: int
    span_s: float

    def __len__(self) -> int:
        return int(self.first.size)


def segments(trace: AccessTrace) -> Segments:
    """The segments of ``trace`` (reads of a key never stored, or of value 0, have none)."""
    rows: list[tuple[int, int, float, float, int, int, int, int]] = []
    # key -> (store event, store seconds, size, row of its last segment, last read event, seconds)
    live: dict[str, tuple[int, float, int, int, int, float]] = {}
    for i, (t, key, tokens, store) in enumerate(
        zip(trace.times_s, trace.keys, trace.tokens, trace.is_store, strict=True)
    ):
        if store:
            live[key] = (i, t, tokens, -1, i - 1, t)
            continue
        entry = live.get(key)
        value = 0 if entry is None else min(entry[2], tokens)
        if entry is None or value <= 0:
            continue
        at, at_s, size, prev, after, after_s = entry
        rows.append((after + 1, i, after_s, t, size, value, prev, i - at + 1))
        live[key] = (at, at_s, size, len(rows) - 1, i, t)
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8
    ints = [np.asarray(c, dtype=np.int64) for c in cols]
    span = (trace.times_s[-1] - trace.times_s[0]) if len(trace) else 0.0
    return Segments(
        first=ints[0],
        last=ints[1],
        start_s=np.asarray(cols[2], dtype=np.float64),
        end_s=np.asarray(cols[3], dtype=np.float64),
        size=ints[4],
        value=ints[5],
        prev=ints[6],
        from_store=ints[7],
        events=len(trace),
        span_s=float(span),
    )


def _fractional_knapsack(
    value: NDArray[np.float64], weight: NDArray[np.float64], cap: float
) -> float:
    """Most value of items taken fractionally within total ``weight`` ``cap`` (weights >= 0)."""
    order = np.lexsort((-value, weight / np.maximum(value, 1e-300)))
    w, v = weight[order], value[order]
    cum = np.cumsum(w)
    full = int(np.searchsorted(cum, cap, side="right"))
    total = float(v[:full].sum())
    if full < w.size:
        room = cap - (float(cum[full - 1]) if full else 0.0)
        total += float(v[full]) * max(room, 0.0) / float(w[full])
    return total


def pfoo_upper(seg: Segments, capacity_tokens: int) -> float:
    """PFOO-U: tokens saved if the capacity had to hold only on average over the trace (the
    smaller of the two clocks, seconds and events); an upper bound on ``OPT``."""
    fits = seg.size <= capacity_tokens
    if not fits.any():
        return 0.0
    value = seg.value[fits].astype(np.float64)
    size = seg.size[fits].astype(np.float64)
    by_events = _fractional_knapsack(
        value,
        size * (seg.last[fits] - seg.first[fits] + 1),
        float(capacity_tokens) * seg.events,
    )
    by_seconds = _fractional_knapsack(
        value, size * (seg.end_s[fits] - seg.start_s[fits]), float(capacity_tokens) * seg.span_s
    )
    return min(by_events, by_seconds)


def pfoo_lower(seg: Segments, capacity_tokens: int) -> tuple[int, NDArray[np.bool_]]:
    """PFOO-L: the value of a feasible schedule (tokens saved) and its kept segments, taken in
    ascending size x events since the entry's store while they fit; a lower bound on ``OPT``."""
    used = np.zeros(seg.events + 1, dtype=np.int64)
    kept = np.zeros(len(seg), dtype=np.bool_)
    order = np.lexsort((seg.from_store, seg.size * seg.from_store))
    total = 0
    for k in order:
        size = int(seg.size[k])
        prev = int(seg.prev[k])
        if size > capacity_tokens or (prev >= 0 and not kept[prev]):
            continue
        lo, hi = int(seg.first[k]), int(seg.last[k]) + 1
        if int(used[lo:hi].max()) + size > capacity_tokens:
            continue
        used[lo:hi] += size
        kept[k] = True
        total += int(seg.value[k])
    return total, kept


@dataclass(frozen=True, slots=True)
class OfflineOptimum:
    """The integer program's best schedule (``value``, tokens saved: a lower bound on ``OPT``),
    its proven upper bound (``bound``) and whether it was solved to optimality."""

    value: float
    bound: float
    optimal: bool


def offline_optimum(
    seg: Segments, capacity_tokens: int, time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> OfflineOptimum:
    """``OPT`` by the integer program above (HiGHS), or its best schedule and bound when the
    time limit (wall seconds) ends the search first; PFOO-L's schedule is the floor."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    floor, _ = pfoo_lower(seg, capacity_tokens)
    cols = np.flatnonzero(seg.size <= capacity_tokens)
    if cols.size == 0:
        return OfflineOptimum(0.0, 0.0, True)
    index = np.full(len(seg), -1, dtype=np.int64)
    index[cols] = np.arange(cols.size)
    first, last, size = seg.first[cols], seg.last[cols], seg.size[cols]
    # the occupancy is largest at some segment's first event: one row per distinct first event
    points = np.unique(first)
    rows_i: list[NDArray[np.int64]] = []
    rows_j: list[NDArray[np.int64]] = []
    vals: list[NDArray[np.float64]] = []
    lo = np.searchsorted(points, first, side="left")
    hi = np.searchsorted(points, last, side="right")
    for j in range(cols.size):
        span = np.arange(lo[j], hi[j], dtype=np.int64)
        rows_i.append(span)
        rows_j.append(np.full(span.size, j, dtype=np.int64))
        vals.append(np.full(span.size, float(size[j])))
    cap_rows = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows_i), np.concatenate(rows_j))),
        shape=(points.size, cols.size),
    )
    constraints = [LinearConstraint(cap_rows, -np.inf, float(capacity_tokens))]
    prev = seg.prev[cols]
    chained = np.flatnonzero(prev >= 0)
    prev_col = index[prev[chained]]
    # a segment whose entry's previous segment cannot fit cannot be kept either
    upper = np.ones(cols.size)
    upper[chained[prev_col < 0]] = 0.0
    ok = chained[prev_col >= 0]
    if ok.size:
        n = ok.size
        chain = coo_matrix(
            (
                np.concatenate([np.ones(n), -np.ones(n)]),
                (np.tile(np.arange(n), 2), np.concatenate([ok, index[prev[ok]]])),
            ),
            shape=(n, cols.size),
        )
        constraints.append(LinearConstraint(chain, -np.inf, 0.0))
    value = seg.value[cols].astype(np.float64)
    res = milp(
        -value,
        integrality=np.ones(cols.size),
        bounds=Bounds(np.zeros(cols.size), upper),
        constraints=constraints,
        options={"time_limit": time_limit_s, "disp": False},
    )
    best = float(floor)
    if res.x is not None:
        best = max(best, float(value @ np.round(res.x)))
    dual = getattr(res, "mip_dual_bound", None)
    bound = -float(dual) if dual is not None and math.isfinite(dual) else math.inf
    optimal = res.status == 0
    if optimal:
        bound = best
    return OfflineOptimum(best, max(bound, best), optimal)
