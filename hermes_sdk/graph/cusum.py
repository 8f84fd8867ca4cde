"""The change detector's statistics: a two-sided CUSUM on normal scores, its threshold from the
in-control average run length (Siegmund's approximation), and the settings that tune it.

:mod:`hermes_sdk.graph.drift` turns a graph's observations into the normal scores these fold
(and inlines :meth:`Cusum.update` on its hot path, bit for bit); see its docstring for the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from hermes_sdk.errors import GraphError

PHI_INV = NormalDist().inv_cdf
GOLDEN = 0.6180339887498949  # Weyl sequence step: deterministic, evenly spread tie-breaks
CLIP = 4.0  # scores are clipped to [-4, 4]: one outlier never alarms alone
_SIEGMUND = 1.166  # overshoot correction of Siegmund's ARL approximation (2 * 0.583)


@lru_cache(maxsize=64)
def cusum_threshold(arl0: float, k: float) -> float:
    """Threshold ``h`` of a one-sided normal CUSUM with reference value ``k`` (> 0) whose
    in-control average run length (observations between false alarms) is ``arl0``.

    Siegmund: ``ARL0 = (exp(2 k b) - 2 k b - 1) / (2 k^2)`` with ``b = h + 1.166``.
    """
    if not (k > 0 and math.isfinite(k)) or not arl0 > 1:
        raise GraphError(f"need k > 0 and arl0 > 1, got k={k!r} arl0={arl0!r}")

    def arl(h: float) -> float:
        b = 2.0 * k * (h + _SIEGMUND)
        return (math.expm1(b) - b) / (2.0 * k * k)

    lo, hi = 0.0, 1.0
    while arl(hi) < arl0:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if arl(mid) < arl0 else (lo, mid)
    return hi


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """How a graph detects changes (see module docstring)."""

    false_alarm_rate: float = 2e-6
    """Expected false alarms per observation of one stream (1 / in-control run length)."""
    shift: float = 0.5
    """Mean shift (in standard deviations of the normal score) the CUSUM is tuned for."""
    min_reference: int = 40
    """Samples since the last change before a stream is monitored."""
    min_change: float = 0.1
    """Smallest change of a value stream's mean, as a fraction of the reference mean, that is
    acted on: an alarm on a smaller one (a real but immaterial shift, or wall-clock noise that
    is not independent from call to call) is absorbed into a re-frozen reference instead."""
    min_change_s: float = 1e-3
    """Smallest change, in seconds, of a time stream's mean (service, cold start) acted on."""

    def __post_init__(self) -> None:
        if not 0.0 < self.false_alarm_rate < 0.5:
            raise GraphError(f"false_alarm_rate must be in (0, 0.5), got {self.false_alarm_rate}")
        if not (0.0 < self.shift <= 10.0):
            raise GraphError(f"shift must be in (0, 10], got {self.shift!r}")
        if isinstance(self.min_reference, bool) or not 2 <= self.min_reference <= 100_000:
            raise GraphError(f"min_reference must be in 2..100000, got {self.min_reference!r}")
        if not 0.0 <= self.min_change <= 10.0:
            raise GraphError(f"min_change must be in [0, 10], got {self.min_change!r}")
        if not (self.min_change_s >= 0.0 and math.isfinite(self.min_change_s)):
            raise GraphError(f"min_change_s must be finite >= 0, got {self.min_change_s!r}")

    @property
    def k(self) -> float:
        """CUSUM reference value (half the tuned shift)."""
        return self.shift / 2.0

    @property
    def threshold(self) -> float:
        """CUSUM threshold ``h`` for :attr:`false_alarm_rate` (two sides share it)."""
        return cusum_threshold(2.0 / self.false_alarm_rate, self.k)


class Cusum:
    """Two-sided CUSUM on scores; remembers how long the alarming excursion has lasted."""

    __slots__ = ("down", "down_len", "h", "k", "up", "up_len")

    def __init__(self, k: float, h: float) -> None:
        self.k, self.h = k, h
        self.up = self.down = 0.0
        self.up_len = self.down_len = 0

    def update(self, z: float) -> int | None:
        """Fold one score in; on an alarm return the excursion's length (observations since the
        change began, this one included) and restart, else None."""
        self.up = max(0.0, self.up + z - self.k)
        self.up_len = self.up_len + 1 if self.up > 0.0 else 0
        self.down = max(0.0, self.down - z - self.k)
        self.down_len = self.down_len + 1 if self.down > 0.0 else 0
        if self.up > self.h or self.down > self.h:
            length = self.up_len if self.up > self.h else self.down_len
            self.up = self.down = 0.0
            self.up_len = self.down_len = 0
            return length
        return None


def change_offset(zs: list[float]) -> int:
    """Where in an alarming excursion ``zs`` the change most likely began: the split maximizing
    the log-likelihood ratio of a mean shift of the excursion's own size (the CUSUM's start,
    tuned for a small shift, often holds a few pre-change scores)."""
    delta = sum(zs) / len(zs)
    best, at, tail = 0.0, 0, 0.0
    for j in range(len(zs) - 1, -1, -1):
        tail += delta * (zs[j] - delta / 2.0)
        if tail > best:
            best, at = tail, j
    return at
