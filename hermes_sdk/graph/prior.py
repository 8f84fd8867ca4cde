"""Priors for apps (or graphs) with no history: pooled run demand, else a heavy-tailed default.

An app the scheduler has never seen completing still needs a remaining-demand distribution. The
registry pools the total service seconds of every completed run of the tenant's apps into one
:class:`~hermes_sdk.graph.sketch.Sketch`; when even that is empty a Lomax (Pareto II) law with
mean :data:`DEFAULT_MEAN_S` is used. Both are conditioned on the seconds the run has already
received (``attained_s``): samples are drawn from ``R | R > attained_s`` and returned as
``R - attained_s``. A decreasing-hazard prior makes Gittins rank unknown apps like LAS (least
attained service first), which is the safe choice without data.
"""

from __future__ import annotations

import threading

import numpy as np

from hermes_sdk.graph.sketch import FloatArray, Sketch, SortedSamples

DEFAULT_MEAN_S = 10.0
"""Mean of the default prior for total run demand, seconds."""
DEFAULT_SHAPE = 2.5
"""Lomax shape alpha of the default prior (finite variance, decreasing hazard)."""
MIN_POOLED_SAMPLES = 20
"""Pooled samples needed before they replace the default prior."""


def lomax_residual(attained_s: float, n: int, rng: np.random.Generator) -> FloatArray:
    """Residual demand samples of the default Lomax prior given ``attained_s`` seconds received.

    For Lomax(alpha, lam) the residual after age ``e`` is Lomax(alpha, lam + e), so the
    conditioning is exact.
    """
    scale_s = DEFAULT_MEAN_S * (DEFAULT_SHAPE - 1.0) + max(attained_s, 0.0)
    u = rng.random(n)
    return np.asarray(scale_s * ((1.0 - u) ** (-1.0 / DEFAULT_SHAPE) - 1.0), dtype=np.float64)


def conditioned_residual(
    samples: SortedSamples, elapsed_s: float, n: int, rng: np.random.Generator
) -> FloatArray:
    """Draws of ``X - elapsed_s`` for ``X ~ samples`` restricted to ``X > elapsed_s``.

    When no sample exceeds ``elapsed_s`` (the unit already ran longer than anything seen) the
    residual is extrapolated as Exponential with mean ``max(mean excess over the p90 sample,
    0.25 * elapsed_s)``: a mean residual life growing with age, as for heavy tails. Every
    returned value is > 0 when ``elapsed_s > 0`` is beyond the data, and >= 0 always.
    """
    values, cum = samples.values, samples.cum_weights
    if values.size == 0:
        return lomax_residual(elapsed_s, n, rng)
    if elapsed_s <= 0.0:
        return samples.sample(rng, n)
    first = int(np.searchsorted(values, elapsed_s, side="right"))
    if first < values.size:
        below = float(cum[first - 1]) if first > 0 else 0.0
        u = below + rng.random(n) * (1.0 - below)
        idx = np.minimum(samples.draw_index(u), values.size - 1)
        idx = np.maximum(idx, first)
        return np.asarray(values[idx] - elapsed_s, dtype=np.float64)
    p90 = float(values[min(int(np.searchsorted(cum, 0.9, side="left")), values.size - 1)])
    top = values[values > p90]
    excess_s = float(top.mean() - p90) if top.size else 0.0
    mean_s = max(excess_s, 0.25 * elapsed_s, 1e-6)
    return np.asarray(rng.exponential(mean_s, n), dtype=np.float64)


class PooledPrior:
    """Total run demand pooled over apps; conditions on attained service. Thread-safe."""

    __slots__ = ("_lock", "sketch")

    def __init__(self, window: int = 5000) -> None:
        self.sketch = Sketch(window=window)
        self._lock = threading.Lock()

    def __getstate__(self) -> tuple[Sketch]:
        # a tuple, never falsy: pickle skips __setstate__ for a false state (an empty sketch)
        return (self.sketch,)

    def __setstate__(self, state: tuple[Sketch]) -> None:
        self.sketch = state[0]
        self._lock = threading.Lock()

    def add(self, run_service_s: float) -> None:
        """Fold in the total service seconds of one completed run."""
        with self._lock:
            self.sketch.add(run_service_s)

    def remaining(self, attained_s: float, n: int, rng: np.random.Generator) -> FloatArray:
        """``n`` samples of remaining demand (seconds) given ``attained_s`` already received."""
        with self._lock:
            samples = None if len(self.sketch) < MIN_POOLED_SAMPLES else self.sketch.sorted()
        if samples is None:
            return lomax_residual(attained_s, n, rng)
        return conditioned_residual(samples, attained_s, n, rng)
