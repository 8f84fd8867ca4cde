"""The change detectors of :mod:`hermes_sdk.graph.drift` over a batch of observations at once.

:meth:`Stream.value` and :meth:`Stream.category` fold one observation at a time. A batch of runs
gives each stream a whole sequence, and between two *events* (a re-freeze of the reference, an
alarm) a stream's scores depend only on its own frozen state: the scores of such a stretch are
computed at once (values: an index of the frozen reference, numpy on at most 500 values, so the
GIL is kept; rows: :mod:`hermes_sdk.graph.row_scores`, pure Python from the row's counter) and
only the CUSUM recursion runs as a tight loop of float arithmetic.
Every event is handed to the one-at-a-time methods themselves, so the result is the same bit for
bit as folding the observations one by one (tests/graph/test_observe_many.py checks it): the
arithmetic of a score is the same IEEE operations in the same order, elementwise.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import add
from typing import cast

import numpy as np

from hermes_sdk.graph.cusum import CLIP, GOLDEN, PHI_INV
from hermes_sdk.graph.drift import Stream
from hermes_sdk.graph.row_scores import row_scores

_INV_CDF: Callable[[float, float, float], float] = getattr(
    statistics, "_normal_dist_inv_cdf", lambda p, mu, sigma: PHI_INV(p)
)
"""``NormalDist(mu, sigma).inv_cdf`` without its argument checks (``u`` is clipped inside (0, 1))
: the function it calls, so the same value."""

_MIN_VECTOR = 8
"""Shorter stretches are folded one value at a time (numpy's per-call cost dominates)."""

_FIRST_BLOCK = 64
"""Values scored at once after an alarm (then twice as many each time, up to :data:`_MAX_BLOCK`)."""
_MAX_BLOCK = 500
"""Most values scored at once: numpy releases the GIL in a ufunc over more than 500 elements,
and a thread learner that releases it waits up to 5 ms for a CPU-bound app's thread."""

_STATE = tuple(name for name in Stream.__slots__)


def snapshot(stream: Stream) -> tuple[object, ...]:
    """Every slot of ``stream`` (its excursion lists copied), for :func:`restore`."""
    return tuple(
        list(v) if isinstance(v, list) and name != "_ref" else v
        for name in _STATE
        for v in (getattr(stream, name),)
    )


def restore(stream: Stream, state: tuple[object, ...]) -> None:
    """Put ``stream`` back as it was at :func:`snapshot`."""
    for name, value in zip(_STATE, state, strict=True):
        setattr(stream, name, value)


def _cusum(zs: list[float], stream: Stream) -> tuple[int, tuple[float, float, int, int]]:
    """Fold ``zs`` into the stream's CUSUM sides (as ``Stream._fold``, bit for bit) up to the
    first score that alarms; returns (its index or ``len(zs)``, the sides before it)."""
    k, h = stream._k, stream._h
    up, down, up_len, down_len = stream._up, stream._down, stream._up_len, stream._down_len
    for i, z in enumerate(zs):
        u = up + z - k
        d = down - z - k
        if u > h or d > h:
            return i, (up, down, up_len, down_len)
        if u > 0.0:
            up = u
            up_len += 1
        else:
            up = 0.0
            up_len = 0
        if d > 0.0:
            down = d
            down_len += 1
        else:
            down = 0.0
            down_len = 0
    return len(zs), (up, down, up_len, down_len)


def _tail(old: list[float], new: Sequence[float], keep: int) -> list[float]:
    """The last ``keep`` items of ``old + new`` (``keep`` >= 0)."""
    if keep == 0:
        return []
    if keep <= len(new):
        return list(new[len(new) - keep :])
    return old[len(old) - (keep - len(new)) :] + list(new)


def _commit(
    stream: Stream,
    sides: tuple[float, float, int, int],
    times: Sequence[float],
    zs: Sequence[float],
    xs: Sequence[float] | None,
) -> None:
    """Set the stream to after folding ``zs`` (none alarming): sides, seen and the excursion
    (always the last ``max(up_len, down_len)`` observations, as ``Stream._fold`` trims it)."""
    up, down, up_len, down_len = sides
    stream._up, stream._down, stream._up_len, stream._down_len = up, down, up_len, down_len
    stream._seen += len(zs)
    keep = up_len if up_len > down_len else down_len
    stream._times = _tail(stream._times, times, keep)
    stream._zs = _tail(stream._zs, zs, keep)
    if xs is not None and stream._floor is not None:
        stream._xs = _tail(stream._xs, xs, keep)


class _RefIndex:
    """Lookups into one frozen reference (sorted samples), built once per freeze: the counts
    ``#{r < x}`` and ``#{r == x}`` of a value ``x`` are those of ``bisect_left`` and
    ``bisect_right``, found cheaper. A reference of few distinct values (tokens, widths) maps
    each of them to both counts; otherwise a search for ``#{r <= x}`` starts at ``#{r < x}``
    and looks no further than the largest multiplicity ``most`` (the reference padded with
    ``most`` infinities, which no finite value reaches)."""

    __slots__ = ("below", "equal", "most", "padded", "ref")

    def __init__(self, ref: list[float]) -> None:
        self.ref = ref
        runs = Counter(ref)
        self.most = max(runs.values(), default=1)
        self.padded = ref + [math.inf] * self.most
        self.below: dict[float, int] | None = None
        self.equal: dict[float, int] = {}
        if 4 * len(runs) <= len(ref):
            self.below = {x: bisect_left(ref, x) for x in runs}
            self.equal = dict(runs)


def _counts(
    ref: list[float], xs: list[float], index: _RefIndex | None = None
) -> tuple[list[int], list[int]]:
    """``[bisect_left(ref, x)]`` and ``[bisect_right(ref, x)]`` of ``xs`` (``ref`` sorted;
    ``index``: its :class:`_RefIndex`, built here if not given)."""
    if index is None or index.ref is not ref:
        index = _RefIndex(ref)
    n = len(xs)
    if index.below is not None:
        got = list(map(index.below.get, xs))
        if None in got:  # values the reference does not hold: none equal, searched
            for j in [j for j, v in enumerate(got) if v is None]:
                got[j] = bisect_left(ref, xs[j])
        lo = cast(list[int], got)
        return lo, list(map(add, lo, map(index.equal.get, xs, repeat(0))))
    padded = index.padded
    # bisect, as Stream.value does: np.searchsorted releases the GIL on every call, and a
    # thread that releases it waits up to the 5 ms switch interval for a CPU-bound app's
    lo_ = list(map(bisect_left, repeat(ref, n), xs))
    hi_ = list(map(bisect_right, repeat(padded, n), xs, lo_, map(add, lo_, repeat(index.most))))
    return lo_, hi_


def _value_scores(
    stream: Stream, xs: list[float], index: _RefIndex | None = None
) -> tuple[list[float], list[float]]:
    """Scores of ``xs`` against the frozen reference, and the Weyl phase after each: the same
    IEEE operations as ``Stream.value``, elementwise (``u = (lo + weyl * equal) / n`` in
    float64, clipped; ``z`` from the same inverse CDF function, clipped). ``index``: the
    reference's :class:`_RefIndex` (built here if not given or not of this reference)."""
    ref = stream._ref
    assert ref is not None
    n = len(xs)
    lo_, hi_ = _counts(ref, xs, index)
    weyls: list[float] = []
    keep = weyls.append
    w = stream._weyl
    for _ in repeat(None, n):
        w = (w + GOLDEN) % 1.0
        keep(w)
    lo = np.array(lo_, dtype=np.float64)  # counts: exact in float64
    u = (lo + np.array(weyls) * (np.array(hi_, dtype=np.float64) - lo)) / stream._n
    u = np.minimum(np.maximum(u, stream._lo), stream._top)
    z = np.fromiter(map(_INV_CDF, u.tolist(), repeat(0.0), repeat(1.0)), np.float64, n)
    zs: list[float] = np.minimum(np.maximum(z, -CLIP), CLIP).tolist()
    return zs, weyls


def fold_values(
    stream: Stream,
    xs: list[float],
    times: list[int],
    reference: Callable[[int], list[float]],
    window: int,
    limit: int,
) -> int | None:
    """Fold ``xs[:limit]`` (observed at run numbers ``times``) as ``stream.value`` would one by
    one; ``reference(i)``: the stream's samples when ``xs[i]`` was observed (read at a
    re-freeze). Stops after the first alarm acted on and returns its index, else None."""
    i, block = 0, _FIRST_BLOCK
    # the reference's index, built once per freeze while this call folds (never kept beyond
    # it: a module-wide cache of them held dead references, ~18 MiB per 10,000 soak runs)
    index: _RefIndex | None = None
    while i < limit:
        gap = stream._next_freeze - stream._seen - 1  # values before the next re-freeze
        if gap <= 0:
            hit = stream.value(xs[i], times[i], reference(i), window)
            i += 1
            if hit is not None:
                return i - 1
            continue
        end = min(limit, i + gap)
        if stream._ref is None:  # gathering the first reference: only counted
            stream._seen += end - i
            i = end
            continue
        if end - i < _MIN_VECTOR or not stream._n:  # (an absorbed alarm re-freezes next)
            if stream.value(xs[i], times[i], (), window) is not None:
                return i
            i += 1
            continue
        end = min(end, i + block)  # scores past an alarm are wasted: blocks grow from small
        block = min(2 * block, _MAX_BLOCK)
        if index is None or index.ref is not stream._ref:
            index = _RefIndex(stream._ref)
        zs, weyls = _value_scores(stream, xs[i:end], index)
        at, sides = _cusum(zs, stream)
        if at:
            stream._weyl = weyls[at - 1]
            _commit(stream, sides, times[i : i + at],
                    zs[:at], xs[i : i + at])  # fmt: skip
        i += at
        if i < end:  # the alarming value: folded by the stream itself
            block = _FIRST_BLOCK
            if stream.value(xs[i], times[i], (), window) is not None:
                return i
            i += 1
    return None


def count_departures(counter: Counter[str], recent: deque[str], targets: Sequence[str],
                     window: int) -> None:  # fmt: skip
    """Record departures to ``targets`` in a row's window (``counter`` of the ``recent``
    targets, oldest first), forgetting the oldest past ``window``; both learning paths use it."""
    for target in targets:
        if len(recent) >= window:
            old = recent.popleft()
            left = counter[old] - 1
            if left > 0:
                counter[old] = left
            else:
                del counter[old]
        recent.append(target)
        counter[target] += 1


class RowState:
    """One transition row while a batch is folded: its counter and window, replaced on an
    alarm (as ``PDGraph._watch_row`` does)."""

    __slots__ = ("counter", "recent")

    def __init__(self, counter: Counter[str], recent: deque[str]) -> None:
        self.counter, self.recent = counter, recent


def fold_row(
    stream: Stream | None,
    row: RowState,
    targets: list[str],
    times: list[float],
    window: int,
) -> list[tuple[int, float]]:
    """Count ``targets`` departing from ``row`` in turn and fold them into its change detector
    (None: detection off) as count-then-``stream.category`` one by one would; returns every
    alarm as (index of the departure, time the change began). On an alarm the row keeps only
    the departures since the change (new counter and window objects, as the graph does)."""
    alarms: list[tuple[int, float]] = []
    i, m = 0, len(targets)
    while i < m:
        if stream is None:
            count_departures(row.counter, row.recent, targets[i:], window)
            return alarms
        gather = stream._min_reference - stream._seen  # departures still only counted
        if gather > 0:
            end = min(m, i + gather)
            count_departures(row.counter, row.recent, targets[i:end], window)
            stream._seen += end - i
            i = end
            continue
        if m - i < _MIN_VECTOR:
            at = m
            zs: list[float] = []
        else:
            zs = row_scores(row.recent, row.counter, targets[i:], window)
            at, sides = _cusum(zs, stream)
            count_departures(row.counter, row.recent, targets[i : i + at], window)
            _commit(stream, sides, times[i : i + at],
                    zs[:at], None)  # fmt: skip
            i += at
            if i >= m:
                return alarms
        # the alarming departure (or a short tail): folded by the stream itself
        for j in range(i, m if not zs else i + 1):
            count_departures(row.counter, row.recent, targets[j : j + 1], window)
            hit = stream.category(targets[j], times[j], row.counter)
            if hit is not None:
                order = list(row.recent)[-hit[0] :]
                row.counter, row.recent = Counter(order), deque(order)
                alarms.append((j, hit[1]))
        i = m if not zs else i + 1
    return alarms
