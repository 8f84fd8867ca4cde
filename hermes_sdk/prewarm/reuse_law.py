"""The value per token-second of keeping a cached prefix: its reuse density at an age.

A cached prefix of ``s`` tokens saves ``s`` tokens of prefill for each call that reads it when
its run next calls the same LLM node (``r`` calls on average: the node's fan-out width), so its
value is reused tokens and its cost is the cache space it takes for as long as it is held
(tokens x seconds). Given the law of the seconds ``G`` from the store to that next call
(``inf``: the run never comes back), an entry of age ``a`` that has not been reused yet is worth
keeping for up to ``T`` more seconds at the density

    D(a) = r max_T  P(a < G <= a + T | G > a) / E[min(G - a, T) | G > a]      (1/s)

reused tokens per held token-second (the prefix's size cancels: a read saves what the entry
holds). It is the hit density of the caching literature (Beckmann et al., "LHD: Improving Cache
Hit Rate by Maximizing Hit Density", NSDI 2018): evicting the entry of lowest density, and not
admitting one whose density is below every entry it would push out, maximises reuse per unit of
cache. On an empirical law (samples) the maximum is at one of the samples beyond ``a``, so it is
computed exactly with one cumulative sum. ``D`` is 0 when no sample lies beyond ``a`` (the run
has ended or overstayed every learned return) and large when the reuse is immediate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

MIN_HOLD_S: Final = 1e-3
"""Floor of the expected hold (seconds), so an immediate reuse has a large finite density."""


@dataclass(frozen=True, slots=True)
class ReuseLaw:
    """An empirical law of the seconds from a prefix's store to its next reuse.

    ``gaps_s``: the finite samples, ascending; ``n``: all samples, so ``n - len(gaps_s)`` of
    them never return; ``reads``: expected calls that read the prefix when the run returns.
    """

    gaps_s: tuple[float, ...]
    n: int
    reads: float = 1.0

    @classmethod
    def from_samples(
        cls, samples_s: Sequence[float] | NDArray[np.float64], reads: float = 1.0
    ) -> ReuseLaw:
        """The law of ``samples_s`` (seconds; ``inf`` for a run that never comes back), each
        return read by ``reads`` calls on average."""
        arr = np.asarray(samples_s, dtype=np.float64)
        if np.isnan(arr).any() or (arr < 0).any():
            raise ValueError("reuse gaps must be >= 0 seconds (inf: never)")
        if not reads > 0:
            raise ValueError(f"reads must be > 0, got {reads!r}")
        finite = np.sort(arr[np.isfinite(arr)])
        return cls(tuple(float(x) for x in finite), int(arr.size), float(reads))

    @property
    def p_reuse(self) -> float:
        """Probability the prefix is reused at all."""
        return len(self.gaps_s) / self.n if self.n else 0.0

    def density(self, age_s: float) -> float:
        """``D(age_s)`` above: reused tokens per held token-second (1/s) of keeping an entry
        stored ``age_s`` seconds ago and not reused since; 0 if no sample lies beyond."""
        return self.reads * self._per_read(age_s)

    def _per_read(self, age_s: float) -> float:
        gaps = self.gaps_s
        first = _first_at_or_after(gaps, age_s)
        m = self.n - first  # samples not yet over at this age (returns still to come + never)
        ahead = len(gaps) - first
        if ahead <= 0 or m <= 0:
            return 0.0
        d = np.asarray(gaps[first:], dtype=np.float64) - age_s
        k = np.arange(1, ahead + 1, dtype=np.float64)
        held = np.cumsum(d) + (m - k) * d  # m * E[min(G - a, T)] at T = each sample
        return float(np.max(k / np.maximum(held, m * MIN_HOLD_S)))


def _first_at_or_after(gaps: tuple[float, ...], age_s: float) -> int:
    """Index of the first sample >= ``age_s`` (bisection on the ascending tuple)."""
    lo, hi = 0, len(gaps)
    while lo < hi:
        mid = (lo + hi) // 2
        if gaps[mid] < age_s:
            lo = mid + 1
        else:
            hi = mid
    return lo


NEVER: Final = ReuseLaw((), 1)
"""The law of a prefix nobody will reuse (density 0 at every age)."""


def shifted(law: ReuseLaw, waits_s: Sequence[float], rng: np.random.Generator) -> ReuseLaw:
    """``law`` with each finite sample delayed by a wait drawn from ``waits_s`` (seconds): the
    next call's queue wait before it is dispatched and looks the prefix up. ``law`` if empty."""
    if not waits_s or not law.gaps_s:
        return law
    extra = np.asarray(waits_s, dtype=np.float64)[rng.integers(len(waits_s), size=len(law.gaps_s))]
    finite = np.sort(np.asarray(law.gaps_s, dtype=np.float64) + extra)
    return ReuseLaw(tuple(float(x) for x in finite), law.n, law.reads)
