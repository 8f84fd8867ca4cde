"""Bounded, optionally time-decayed sample sketches: the per-node demand distributions.

A :class:`Sketch` keeps the last ``window`` observations of one quantity (seconds, tokens, width)
in a ring buffer. With ``half_life_s`` set, each sample is weighted by
``0.5 ** ((t_newest - t_i) / half_life_s)`` where ``t_i`` is the sample's timestamp (the run's
``started_at``) and ``t_newest`` the newest timestamp in the sketch, so the distribution follows
drift while staying a deterministic function of the observed samples (a rebuild from the store
gives the same weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.errors import GraphError

FloatArray = NDArray[np.float64]

MAX_WINDOW = 1_000_000
"""Largest window accepted (samples per sketch)."""
STEP_SLACK = 1e-9
"""How close to a CDF step (in samples, ``u * m``) an equal-weight draw is searched exactly:
rounding moves ``u * m`` and ``(i + 1) / m`` by under ``m * 2**-52 <= 2.3e-10`` samples."""


@dataclass(frozen=True, slots=True)
class SortedSamples:
    """A sketch's samples sorted ascending with cumulative normalised weights (last = 1.0)."""

    values: FloatArray
    cum_weights: FloatArray
    equal_weights: bool = False
    """True when ``cum_weights`` is ``arange(1, m + 1) / m`` (no decay): :meth:`draw_index` then
    skips the binary search."""

    def __len__(self) -> int:
        return int(self.values.size)

    def draw_index(self, u: FloatArray) -> NDArray[np.int64]:
        """``searchsorted(cum_weights, u, side="right")`` for uniforms ``u`` in [0, 1): the
        inverse-CDF index of each draw (may equal ``len``; clip it). With equal weights it is
        ``floor(u * m)``, and the binary search runs only for the draws that rounding could
        have put across a step (``u * m`` within STEP_SLACK of an integer): the same indices in
        O(len(u)) instead of a binary search per draw."""
        cum = self.cum_weights
        m = cum.size
        if not self.equal_weights or m == 0:
            return np.searchsorted(cum, u, side="right")
        x = u * m
        k = x.astype(np.int64)
        frac = x - k
        near = np.flatnonzero((frac < STEP_SLACK) | (frac > 1.0 - STEP_SLACK))
        if near.size:
            k[near] = np.searchsorted(cum, u[near], side="right")
        return k

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """``n`` weighted draws with replacement (zeros when empty)."""
        if self.values.size == 0:
            return np.zeros(n)
        idx = self.draw_index(rng.random(n))
        return self.values[np.minimum(idx, self.values.size - 1)]

    def mean(self) -> float | None:
        """Weighted mean, or None when empty."""
        if self.values.size == 0:
            return None
        probs = np.diff(self.cum_weights, prepend=0.0)
        return float(np.dot(self.values, probs))

    def quantile(self, q: float) -> float | None:
        """Weighted ``q``-quantile (lower inverse CDF), or None when empty."""
        if not 0.0 <= q <= 1.0:
            raise GraphError(f"quantile q must be within [0, 1], got {q!r}")
        if self.values.size == 0:
            return None
        idx = int(np.searchsorted(self.cum_weights, q, side="left"))
        return float(self.values[min(idx, self.values.size - 1)])


class Sketch:
    """Ring buffer of the last ``window`` samples of one quantity with optional time decay."""

    __slots__ = (
        "_arrays",
        "_cache",
        "_count",
        "_head",
        "_times_list",
        "_values_list",
        "half_life_s",
        "window",
    )

    def __init__(self, window: int = 1000, half_life_s: float | None = None) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
            raise GraphError(f"window must be an int in 1..{MAX_WINDOW}, got {window!r}")
        if half_life_s is not None and not (half_life_s > 0 and np.isfinite(half_life_s)):
            raise GraphError(f"half_life_s must be a positive number or None, got {half_life_s!r}")
        self.window = window
        self.half_life_s = None if half_life_s is None else float(half_life_s)
        # plain lists: an add is two list stores (numpy scalar stores cost ~10x more)
        self._values_list: list[float] = []
        self._times_list: list[float] = []
        self._head = 0  # next write position once the buffer is full
        self._count = 0  # total samples ever added
        self._arrays: FloatArray | None = None  # values as an array, until the next add
        self._cache: SortedSamples | None = None

    def __len__(self) -> int:
        return len(self._values_list)

    @property
    def _values(self) -> FloatArray:
        if self._arrays is None:
            values = self._values_list
            self._arrays = np.fromiter(values, dtype=np.float64, count=len(values))
        return self._arrays

    @property
    def _times(self) -> FloatArray:
        times = self._times_list
        return np.fromiter(times, dtype=np.float64, count=len(times))

    @property
    def total_added(self) -> int:
        """How many samples were ever added (including evicted ones)."""
        return self._count

    def add(self, value: float, time_s: float = 0.0) -> None:
        """Append one sample taken at unix time ``time_s``, evicting the oldest if full."""
        if len(self._values_list) < self.window:
            self._values_list.append(float(value))
            self._times_list.append(float(time_s))
        else:
            self._values_list[self._head] = float(value)
            self._times_list[self._head] = float(time_s)
            self._head = (self._head + 1) % self.window
        self._count += 1
        self._arrays = None
        self._cache = None

    def extend(self, values: list[float], times: list[float]) -> None:
        """:meth:`add` of each ``values[i]`` at ``times[i]`` in order, in bulk: the same buffer
        (ring order included) as adding them one by one. Both lists hold floats already."""
        m = len(values)
        if not m:
            return
        vl, tl, w = self._values_list, self._times_list, self.window
        take = min(w - len(vl), m)
        if take > 0:
            vl.extend(values[:take])
            tl.extend(times[:take])
        else:
            take = 0
        head, i = self._head, take
        while i < m:  # once full: overwrite from the head, wrapping around
            k = min(w - head, m - i)
            vl[head : head + k] = values[i : i + k]
            tl[head : head + k] = times[i : i + k]
            head = (head + k) % w
            i += k
        self._head = head
        self._count += m
        self._arrays = None
        self._cache = None

    def values(self) -> list[float]:
        """The samples held, in storage order (the list itself: do not modify)."""
        return self._values_list

    def keep_last(self, count: int) -> int:
        """Forget all but the newest ``count`` samples (a detected change); returns how many
        were dropped."""
        values, times = self.chronological()
        dropped = max(0, values.size - max(0, count))
        if dropped:
            self._values_list = values[dropped:].tolist()
            self._times_list = times[dropped:].tolist()
            self._head = 0
            self._arrays = None
            self._cache = None
        return dropped

    def sorted_values(self) -> FloatArray:
        """The samples sorted ascending, ignoring weights (cheaper than :meth:`sorted`)."""
        if self._cache is not None:
            return self._cache.values
        return np.sort(self._values)

    def chronological(self) -> tuple[FloatArray, FloatArray]:
        """(values, times) oldest first."""
        if len(self._values_list) < self.window or self._head == 0:
            return self._values.copy(), self._times.copy()
        order = np.r_[self._head : self.window, 0 : self._head]
        return self._values[order], self._times[order]

    def weights(self) -> FloatArray:
        """Per-sample weights in storage order (all ones without decay)."""
        if self.half_life_s is None or self._values.size == 0:
            return np.ones(self._values.size)
        age_s = float(self._times.max()) - self._times
        return np.power(0.5, age_s / self.half_life_s)

    def sorted(self) -> SortedSamples:
        """Samples sorted ascending with cumulative weights (cached until the next add)."""
        if self._cache is None:
            order = np.lexsort((self._times, self._values))  # canonical: by value, then time
            values = self._values[order]
            w = self.weights()[order]
            total = float(w.sum())
            cum = np.cumsum(w) / total if total > 0 else np.empty(0)
            if cum.size:
                cum[-1] = 1.0
            values.setflags(write=False)
            cum.setflags(write=False)
            self._cache = SortedSamples(values, cum, equal_weights=self.half_life_s is None)
        return self._cache

    def mean(self) -> float | None:
        """Weighted mean, or None when empty."""
        if self._values.size == 0:
            return None
        w = self.weights()  # fsum: exact, so independent of the ring buffer's rotation
        return math.fsum((self._values * w).tolist()) / math.fsum(w.tolist())

    def quantile(self, q: float) -> float | None:
        """Weighted ``q``-quantile (lower inverse CDF), or None when empty."""
        return self.sorted().quantile(q)

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """``n`` weighted draws with replacement (zeros when empty)."""
        return self.sorted().sample(rng, n)

    def summary(self) -> dict[str, float | int | None]:
        """``{"n", "mean", "p50", "p95"}`` of the current window."""
        return {
            "n": len(self),
            "mean": self.mean(),
            "p50": self.quantile(0.5),
            "p95": self.quantile(0.95),
        }
