"""Queue-wide deadline feasibility: one pass over a ranked queue (Moore-Hodgson, then latest fit).

A policy ranks one run at a time, so it cannot see that a deadline run which fits its deadline if
served now will miss behind the *sum* of the work ranked ahead of it. This pass looks at the whole
queue of one engine at once. Inputs, per run, in queue order (ties already broken):

- ``rank_s``: the policy's key (lower first); keys at or past ``HOPELESS_RANK_S`` are left alone;
- ``work_s``: the run's predicted remaining service (seconds of one slot), what it costs the runs
  behind it;
- ``wait_s``: how long the run may still wait before it must be served to make its deadline
  (``deadline - now - L_q``, seconds; NaN for a run without a deadline, one at risk (``p < q``) or a
  hopeless one: those are never promoted).

The engine serves ``capacity`` service-seconds per second (``slots x`` per-slot speed when full);
a run behind work ``W`` waits ``W / capacity`` (the fluid approximation of a batching engine:
work ahead is divided over the slots; it overstates the wait of the runs that get a slot at once).
Each run is then a job of length ``p = work_s / capacity`` on one machine, and a deadline run ``j``
must *start* by ``wait_s`` (its own remaining latency is already in ``wait_s``), i.e. end its
``p_j`` block by ``due_j = wait_s_j + p_j``.

1. Moore-Hodgson over the deadline runs (in order of ``due``, dropping the longest kept job
   whenever the kept prefix overruns) gives the largest set ``F`` that can all meet their
   deadlines if nothing else ran (optimal for the number of late jobs on one machine with known
   sizes); the dropped runs are not promoted.
2. ``F`` scheduled as late as possible in ``due`` order gives each member a latest start ``LS``.
3. The queue is walked in rank order with the work placed so far ``T``; before the next run ``x``
   is placed, the first unplaced member ``d`` of ``F`` (in ``due`` order) goes first whenever
   ``T + p_x > LS_d``. So every member of ``F`` is served no later than it must be (``T <= LS`` of
   the first unplaced member holds throughout; ``LS`` grows along ``F`` by at least each member's
   own ``p``), and no later than its rank would serve it; everything else keeps its rank order,
   delayed only as much as ``F`` needs (dropped runs fall behind the members that must pass them).

The result is new keys in the same order as the inputs: unchanged for runs left in place, lowered
just below the next run's key for promoted ones. The derivation is in docs/theory.md, section 4b
("The queue-wide pass").
"""

from __future__ import annotations

import heapq
import math
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hermes_sdk.policy.deadline_gittins import HOPELESS_RANK_S

FIT_EPS_S: Final = 1e-9
"""Tolerance (seconds) of the fit tests (float round-off in the cumulative sums)."""


def moore_hodgson(length_s: ArrayLike, due_s: ArrayLike) -> NDArray[np.bool_]:
    """Which jobs Moore-Hodgson keeps: the largest set that all end by their due times (seconds)
    when run back to back from time 0 in due order; ties in due by index."""
    p = np.asarray(length_s, dtype=np.float64).ravel()
    due = np.asarray(due_s, dtype=np.float64).ravel()
    if p.shape != due.shape:
        raise ValueError(f"length_s and due_s differ in shape: {p.shape} vs {due.shape}")
    kept = np.zeros(p.size, dtype=bool)
    heap: list[tuple[float, int]] = []
    t = 0.0
    for j in np.argsort(due, kind="stable").tolist():
        t += float(p[j])
        heapq.heappush(heap, (-float(p[j]), j))
        kept[j] = True
        if t > due[j] + FIT_EPS_S:
            neg, longest = heapq.heappop(heap)
            t += neg
            kept[longest] = False
    return kept


def latest_starts(length_s: NDArray[np.float64], due_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Latest start (seconds) of each job when the jobs, in the given (due) order, are run as late
    as possible with each ending by its due time: ``LS_k = min_{m >= k} (due_m - P_m) + P_k - p_k``
    (``P`` the prefix sums of the lengths)."""
    prefix = np.cumsum(length_s)
    tail = np.minimum.accumulate((due_s - prefix)[::-1])[::-1]
    return tail + prefix - length_s


def feasibility_keys(
    rank_s: ArrayLike, work_s: ArrayLike, wait_s: ArrayLike, *, capacity: float = 1.0
) -> NDArray[np.float64]:
    """New keys for one engine's queue after the queue-wide pass (module docstring): the inputs in
    queue order (rank, then ties as the queue breaks them), seconds; ``capacity`` in
    service-seconds per second. Keys of runs the pass leaves in place are returned unchanged."""
    rank = np.array(rank_s, dtype=np.float64).ravel()
    work = np.asarray(work_s, dtype=np.float64).ravel()
    wait = np.asarray(wait_s, dtype=np.float64).ravel()
    if not (rank.shape == work.shape == wait.shape):
        raise ValueError("rank_s, work_s and wait_s must have one entry per run")
    if not (math.isfinite(capacity) and capacity > 0.0):
        raise ValueError(f"capacity must be finite and > 0, got {capacity!r}")
    candidate = np.isfinite(wait) & (wait >= 0.0) & (rank < HOPELESS_RANK_S)
    if not candidate.any():
        return rank
    length = np.maximum(np.nan_to_num(work, nan=0.0, posinf=0.0), 0.0) / capacity
    order = np.argsort(rank, kind="stable")
    pos = np.empty(rank.size, dtype=np.int64)
    pos[order] = np.arange(rank.size)
    members = np.flatnonzero(candidate)
    due = wait[members] + length[members]
    members = members[moore_hodgson(length[members], due)]
    if members.size == 0:
        return rank
    due = wait[members] + length[members]
    members = members[np.lexsort((pos[members], due))]
    start_by = latest_starts(length[members], wait[members] + length[members]).tolist()
    placed = np.zeros(rank.size, dtype=bool)
    sequence: list[int] = []
    lengths = length.tolist()
    fixed = members.tolist()
    head, t = 0, 0.0
    for x in order.tolist():
        if placed[x]:
            continue
        while head < len(fixed):
            d = fixed[head]
            if placed[d]:
                head += 1
                continue
            if d == x or t + lengths[x] <= start_by[head] + FIT_EPS_S:
                break
            placed[d] = True
            sequence.append(d)
            t += lengths[d]
            head += 1
        placed[x] = True
        sequence.append(x)
        t += lengths[x]
    out = rank.copy()
    following = math.inf
    for x in reversed(sequence):
        if out[x] >= following:
            out[x] = math.nextafter(following, -math.inf)
        following = out[x]
    return out
