"""Learned keep-alive: how long an idle warm backend is kept before it is released.

A hybrid-histogram policy in the spirit of Shahrad et al., "Serverless in the Wild" (ATC 2020):
every idle gap of a backend (seconds from the end of its last use to its next request) goes into
a histogram with geometric bins; the keep-alive is the ``percentile`` of that histogram (the upper
edge of the bin where the CDF crosses it) plus a ``margin``, clamped to ``[min_s, max_s]``. Until
``min_samples`` gaps are seen the histogram is not representative and a fixed keep-alive is used.
Old gaps fade out: each new gap multiplies the existing counts by ``decay`` so the histogram
follows drift with an effective memory of ``1 / (1 - decay)`` gaps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph import drift


@dataclass(frozen=True, slots=True)
class KeepAliveConfig:
    """Knobs of the histogram keep-alive; all durations in seconds."""

    percentile: float = 0.99
    margin: float = 0.10
    min_samples: int = 10
    fixed_s: float = 60.0
    min_s: float = 0.0
    max_s: float = 3600.0
    bin_ratio: float = 1.15
    first_bin_s: float = 0.05
    decay: float = 0.999

    def __post_init__(self) -> None:
        if not 0.0 < self.percentile <= 1.0:
            raise ConfigError(f"percentile must be in (0, 1], got {self.percentile!r}")
        if not 0.0 <= self.min_s <= self.max_s or not math.isfinite(self.max_s):
            raise ConfigError(f"need 0 <= min_s <= max_s < inf, got {self.min_s}, {self.max_s}")
        if not self.min_s <= self.fixed_s <= self.max_s:
            raise ConfigError(f"fixed_s must lie within [min_s, max_s], got {self.fixed_s!r}")
        if self.bin_ratio <= 1.0 or self.first_bin_s <= 0.0 or self.margin < 0.0:
            raise ConfigError("bin_ratio must be > 1, first_bin_s > 0 and margin >= 0")
        if not 0.0 < self.decay <= 1.0 or self.min_samples < 1:
            raise ConfigError("decay must be in (0, 1] and min_samples >= 1")


class IdleHistogram:
    """Histogram of one backend's idle gaps (seconds) and the keep-alive it implies.

    Bin 0 holds gaps shorter than ``first_bin_s`` (including gaps a forecast already covers,
    recorded as 0); bin ``i`` holds ``[first * r**(i-1), first * r**i)``; the last bin is the
    overflow for gaps beyond ``max_s``.
    """

    __slots__ = ("_counts", "_edges_s", "_uncovered", "config", "samples")

    def __init__(self, config: KeepAliveConfig | None = None) -> None:
        self.config = config or KeepAliveConfig()
        cfg = self.config
        top_s = max(cfg.max_s, cfg.first_bin_s)
        n_bins = 1 + math.ceil(math.log(top_s / cfg.first_bin_s) / math.log(cfg.bin_ratio))
        self._edges_s: NDArray[np.float64] = cfg.first_bin_s * np.power(
            cfg.bin_ratio, np.arange(n_bins, dtype=np.float64)
        )
        self._counts: NDArray[np.float64] = np.zeros(n_bins + 1)
        self._uncovered: NDArray[np.float64] = np.zeros(n_bins + 1)
        self.samples = 0
        """Gaps observed so far (not decayed)."""

    def observe(self, idle_s: float, *, covered: bool = False) -> None:
        """Record one idle gap in seconds (negative or NaN gaps are ignored).

        ``covered``: a forecast predicted the request that ended the gap (a prewarm would have
        hidden its cold start without any keep-alive); the percentile rule counts such a gap as 0.
        """
        if not idle_s >= 0.0:
            return
        decay = self.config.decay
        self._counts *= decay
        self._uncovered *= decay
        idx = int(np.searchsorted(self._edges_s, idle_s, side="right"))
        self._counts[idx] += 1.0
        if not covered:
            self._uncovered[idx] += 1.0
        self.samples += 1

    def _percentile_counts(self) -> NDArray[np.float64]:
        counts = self._uncovered.copy()
        counts[0] += float(self._counts.sum() - self._uncovered.sum())
        return counts

    def quantile_s(self, q: float) -> float | None:
        """Upper edge (seconds) of the bin where the gap CDF first reaches ``q``; None if empty.

        ``inf`` when the quantile falls in the overflow bin.
        """
        counts = self._percentile_counts()
        total = float(counts.sum())
        if total <= 0.0:
            return None
        cdf = np.cumsum(counts) / total
        idx = int(np.searchsorted(cdf, q - 1e-12, side="left"))
        return math.inf if idx >= self._edges_s.size else float(self._edges_s[idx])

    def keep_alive_s(self) -> float:
        """Seconds to keep an idle warm backend before releasing it."""
        cfg = self.config
        if self.samples < cfg.min_samples:
            return cfg.fixed_s
        q_s = self.quantile_s(cfg.percentile)
        if q_s is None:
            return cfg.fixed_s
        return min(cfg.max_s, max(cfg.min_s, q_s * (1.0 + cfg.margin)))

    def cost_keep_alive_s(self, c_idle: float, c_delay: float, cold_start_s: float) -> float:
        """Keep-alive minimising the expected cost per idle gap (a ski-rental choice).

        Keeping a backend for ``k`` seconds costs ``c_idle * E[min(G, k)]``; a gap longer than
        ``k`` costs a restart: ``c_idle * C`` of warming if a forecast covers it (a prewarm),
        ``c_delay * C`` of app delay if not. Candidates are 0 and the histogram's bin edges.
        """
        cfg = self.config
        if self.samples < cfg.min_samples:
            return cfg.fixed_s
        total = float(self._counts.sum())
        if total <= 0.0:
            return cfg.fixed_s
        edges = self._edges_s
        rep = np.empty(edges.size + 1)
        rep[0] = edges[0] / 2.0
        rep[1:-1] = np.sqrt(edges[:-1] * edges[1:])
        rep[-1] = cfg.max_s
        candidates = np.concatenate(([0.0], edges))
        candidates = candidates[(candidates >= cfg.min_s) & (candidates <= cfg.max_s)]
        if candidates.size == 0:
            return cfg.min_s
        longer = rep[None, :] > candidates[:, None]
        idle = (np.minimum(rep[None, :], candidates[:, None]) * self._counts).sum(axis=1)
        unc = (longer * self._uncovered).sum(axis=1)
        cov = (longer * (self._counts - self._uncovered)).sum(axis=1)
        cost = c_idle * idle + c_idle * cold_start_s * cov + c_delay * cold_start_s * unc
        return float(candidates[int(np.argmin(cost))])


class ColdStartSketch:
    """Observed start-up seconds of one backend (bounded window) with a prior until observed.

    A change detector (:mod:`hermes_sdk.graph.drift`) watches the start-up times: when they
    change (a new image, a new model), the ones from before the change are dropped."""

    __slots__ = ("_drift", "_observed", "_quantiles", "_values_s", "changes", "prior_s", "window")

    def __init__(self, prior_s: float = 10.0, window: int = 200) -> None:
        if not (prior_s >= 0.0 and math.isfinite(prior_s)) or window < 1:
            raise ConfigError(f"prior_s must be finite >= 0 and window >= 1, got {prior_s!r}")
        self.prior_s = float(prior_s)
        self.window = window
        self._values_s: list[float] = []
        self._quantiles: dict[float, float] = {}
        self._drift = drift.Stream(
            drift.DEFAULT, drift.DEFAULT.threshold, drift.DEFAULT.min_change_s
        )
        self._observed = 0
        self.changes = 0
        """Changes of the start-up time detected so far."""

    def observe(self, startup_s: float) -> None:
        """Record one observed cold start (seconds from start command to ready)."""
        if not (startup_s >= 0.0 and math.isfinite(startup_s)):
            return
        self._quantiles.clear()
        self._values_s.append(float(startup_s))
        if len(self._values_s) > self.window:
            del self._values_s[0]
        self._observed += 1
        hit = self._drift.value(startup_s, self._observed, self._values_s, self.window)
        if hit is not None:
            del self._values_s[: max(0, len(self._values_s) - hit[0])]
            self.changes += 1

    @property
    def count(self) -> int:
        """Number of cold starts in the window."""
        return len(self._values_s)

    def quantile_s(self, q: float) -> float:
        """``q``-quantile of start-up seconds (the prior until anything is observed)."""
        if not self._values_s:
            return self.prior_s
        value = self._quantiles.get(q)
        if value is None:
            value = self._quantiles[q] = float(np.quantile(np.asarray(self._values_s), q))
        return value

    def mean_s(self) -> float:
        """Mean start-up seconds (the prior until anything is observed)."""
        return float(np.mean(self._values_s)) if self._values_s else self.prior_s
