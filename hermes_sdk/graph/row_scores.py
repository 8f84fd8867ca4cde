"""The change detector's scores of a transition row's departures, a batch at a time, in pure
Python: the same floats as ``Stream.category`` gives them one by one.

A departure to target ``t`` scores ``(hit - p0) / sqrt(p0 (1 - p0))`` clipped to ``[-CLIP,
CLIP]``: ``hit`` says whether ``t`` is the row's mode over its window counted *with* this
departure (ties go to the smallest name), ``p0`` is the mode's count without this departure over
the ``n`` departures before it in the window, clipped to ``[0.5/n, 1 - 0.5/n]``.

Kept in pure Python on purpose: the numpy form (a one-hot matrix of the window, a cumulative sum,
an argmax) released the GIL in every call over ~500 elements, and a learner thread that releases
the GIL waits a whole 5 ms switch interval to get it back from a CPU-bound app thread. In a
40,000-run soak that wait was most of the thread learner's time (issue 29). This form also costs
O(departures + names) per call, not O(window): the window's counts start from the row's counter.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from itertools import islice
from math import sqrt

from hermes_sdk.graph.cusum import CLIP


def row_scores(
    recent: deque[str], counter: Counter[str], targets: Sequence[str], window: int
) -> list[float]:
    """Scores of ``targets`` departing in turn from a row whose window holds ``recent`` (oldest
    first; ``counter`` counts it) and keeps the last ``window`` departures, the window updated
    after each departure as :func:`~hermes_sdk.graph.drift_batch.count_departures` does."""
    if len(recent) > window:  # (a row never holds more; the older ones would never count)
        recent = deque(islice(recent, len(recent) - window, None))
        counter = Counter(recent)
    names = sorted(set(counter).union(targets))
    rank = {name: i for i, name in enumerate(names)}
    counts = [counter.get(name, 0) for name in names]
    r0, m = len(recent), len(targets)
    new = [rank[t] for t in targets]
    # departure e (position r0 + j of recent + targets) counts positions e + 1 - window .. e:
    # from e = window on, each departure pushes out position e - window, at most m - 1
    seq = [rank[t] for t in islice(recent, 0, min(r0, m))]
    if r0 < m:
        seq += new
    out: list[float] = []
    keep = out.append
    memo: dict[tuple[int, int, bool], float] = {}  # (n, top, hit) -> score
    e = r0
    for x in new:
        counts[x] += 1
        if e >= window:
            counts[seq[e - window]] -= 1
            n = window - 1  # departures before this one in its window
        else:
            n = e
        top = max(counts)
        hit = counts.index(top) == x  # ties: the smallest name
        key = (n, top, hit)
        z = memo.get(key)
        if z is None:
            p0 = (top - hit) / n
            floor = 0.5 / n
            p0 = min(max(p0, floor), 1.0 - floor)
            z = ((1.0 if hit else 0.0) - p0) / sqrt(p0 * (1.0 - p0))
            z = memo[key] = -CLIP if z < -CLIP else (CLIP if z > CLIP else z)
        keep(z)
        e += 1
    return out
