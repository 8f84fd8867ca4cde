"""The Gittins index of an empirical size distribution, and the policies that rank by it.

For a job whose size ``R`` is only known as a distribution and that has received ``a`` seconds of
service, the Gittins index is ``max_D P(R - a <= D | R > a) / E[min(R - a, D) | R > a]``: the best
achievable rate of "completion probability per second invested" over service quanta ``D``. Serving
the job with the highest index minimises mean response time on one server among policies that do
not know sizes (Gittins 1989; Aalto, Ayesta, Righter 2009). On an empirical distribution the
maximum is attained at one of the residual samples, so with the sorted residuals ``r_1..r_m``::

    G(r_k) = k / (r_1 + ... + r_k + (m - k) * r_k)

which one sort and one cumulative sum evaluate for every ``k`` at once (O(m log m)). Ranks are
``1 / index``, in seconds, lower first.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Final, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hermes_sdk.graph.records import RunState
from hermes_sdk.policy.base import AppState, DemandModel

_MEMO_SIZE: Final = 4096
MIN_RESIDUAL_S: Final = 1e-9
"""Residual sizes at or below this many seconds count as finished (guards float round-off)."""


_RAMPS: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
_scratch = threading.local()
"""Per-thread work arrays of the index (the hot path allocates nothing per call)."""


def _ramps(m: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(k, m - k)`` for k = 1..m, cached per m (the hot path ranks 1000-sample arrays)."""
    hit = _RAMPS.get(m)
    if hit is None:
        k = np.arange(1, m + 1, dtype=np.float64)
        hit = (k, m - k)
        if len(_RAMPS) < 64:
            _RAMPS[m] = hit
    return hit


def gittins_index_and_quantum(samples: ArrayLike, attained: float = 0.0) -> tuple[float, float]:
    """``(index, quantum_s)``: the Gittins index (1/s) and the quantum that attains it (seconds).

    ``samples`` are total sizes in seconds; the distribution is conditioned on ``R > attained``.
    While a job is served for less than ``quantum_s`` more seconds its index does not fall below
    the returned value, so a scheduler need only re-rank it at the end of the quantum.
    Residuals below ``MIN_RESIDUAL_S`` (float round-off of a clock) count as that much, which
    caps the index at ``1 / MIN_RESIDUAL_S``.
    When no sample exceeds ``attained`` the job has outlived everything seen; it is then treated
    as if its residual equalled its attained service (index ``1 / attained``, quantum
    ``attained``), the doubling guess that ranks it like least-attained-service.
    """
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1:
        arr = arr.ravel()
    n = arr.size
    if n == 0:
        raise ValueError("gittins_index() needs at least one sample")
    if not (math.isfinite(attained) and attained >= 0.0):
        raise ValueError(f"attained must be finite and >= 0, got {attained!r}")
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.shape[1] < n:
        buf = _scratch.buf = np.empty((3, max(n, 1024)))
    s = buf[0, :n]
    s[:] = arr
    s.sort()
    if not (math.isfinite(s[0]) and math.isfinite(s[-1])):  # NaN sorts last
        raise ValueError("gittins_index() samples must be finite")
    j = int(np.searchsorted(s, attained, side="right")) if s[0] <= attained else 0
    res = s[j:]  # the residuals' support, sorted (subtracting a constant keeps the order)
    m = n - j
    if m == 0:
        guess = max(float(attained), MIN_RESIDUAL_S)
        return 1.0 / guess, guess
    if attained:
        res -= attained
    k, rest = _ramps(m)
    # m * E[min(R, r_k)] = sum_{i<=k} r_i + (m - k) r_k ; m * P(R <= r_k) = k (ties: last k wins)
    denom, tmp = buf[1, :m], buf[2, :m]
    np.cumsum(res, out=denom)
    np.multiply(rest, res, out=tmp)
    denom += tmp
    if res[0] < MIN_RESIDUAL_S:  # denominators >= m * r_1; keep the ratios finite
        np.maximum(denom, MIN_RESIDUAL_S * m, out=denom)
    np.divide(k, denom, out=denom)  # the ratios
    best = int(denom.argmax())
    return float(denom[best]), float(res[best])


def gittins_index(samples: ArrayLike, attained: float = 0.0) -> float:
    """Gittins index (1/s) of the empirical size distribution ``samples`` (seconds) after
    ``attained`` seconds of service; exact on the samples, O(n log n).

    Two-point sizes (1 w.p. 0.9, 20 w.p. 0.1) give 0.9 at ``attained=0`` and 1/19 at
    ``attained=1``; a single-valued distribution ``c`` gives ``1/c``.
    """
    return gittins_index_and_quantum(samples, attained)[0]


class RankLookup(Protocol):
    """Precomputed Gittins ranks per state (:class:`~hermes_sdk.graph.rank_tables.RankTables`)."""

    def gittins(self, app: str, state: RunState, tenant: str = "default") -> tuple[float, float]:
        """``(rank_s, quantum_s)`` of a run of ``app`` in ``state``."""
        ...


class GittinsPolicy:
    """Rank = 1 / Gittins index of the app's predicted remaining demand (seconds, lower first).

    The :class:`DemandModel` conditions on the app's graph state (node, visit counts, service
    already spent in the running stage), so its samples are residuals and the index is taken at
    attained 0. A Gittins index depends only on the app's own state, never on other apps.
    A model with ``rank_tables`` (the graph registry) answers from its per-state tables: a
    lookup instead of a Monte Carlo walk per rank.
    """

    name = "gittins"
    dynamic = True
    """The rank changes as the app is served (schedulers re-rank after progress)."""

    def __init__(self, model: DemandModel, n: int = 1000) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.model = model
        self.n = n
        self.tables: RankLookup | None = getattr(model, "rank_tables", None)
        self._memo: OrderedDict[int, tuple[NDArray[np.float64], float, float]] = OrderedDict()

    def rank_and_quantum(self, app: AppState, now: float) -> tuple[float, float]:
        """``(rank_s, quantum_s)``: rank, and the service after which it must be re-evaluated.

        Models that cache (the PDGraph, the oracle) return the same read-only array for the same
        state; its index is then remembered instead of recomputed.
        """
        if self.tables is not None:
            return self.tables.gittins(app.app, app.state, app.tenant)
        samples = self.model.remaining_demand(app.app, app.state, tenant=app.tenant, n=self.n)
        cacheable = isinstance(samples, np.ndarray) and not samples.flags.writeable
        if cacheable:
            hit = self._memo.get(id(samples))
            if hit is not None and hit[0] is samples:
                return hit[1], hit[2]
        index, quantum = gittins_index_and_quantum(samples)
        if cacheable:
            self._memo[id(samples)] = (samples, 1.0 / index, quantum)
            if len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        return 1.0 / index, quantum

    def rank(self, app: AppState, now: float) -> float:
        """1 / Gittins index of the remaining demand, in seconds."""
        return self.rank_and_quantum(app, now)[0]


class GittinsBlindPolicy:
    """Gittins on the app kind's total-demand distribution, conditioned only on attained service.

    The ablation of :class:`GittinsPolicy` that ignores where the app is in its graph: samples are
    the model's remaining demand from the start state (the whole app's size), conditioned on
    ``R > app.attained_s``. This is what a size-distribution scheduler without a PDGraph can do.
    """

    name = "gittins_blind"
    dynamic = True

    def __init__(self, model: DemandModel, n: int = 1000) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.model = model
        self.n = n

    def rank_and_quantum(self, app: AppState, now: float) -> tuple[float, float]:
        """``(rank_s, quantum_s)`` from the total-size samples of the app kind."""
        samples = self.model.remaining_demand(app.app, RunState(), tenant=app.tenant, n=self.n)
        index, quantum = gittins_index_and_quantum(samples, app.attained_s)
        return 1.0 / index, quantum

    def rank(self, app: AppState, now: float) -> float:
        """1 / Gittins index of the total-size distribution given attained service, seconds."""
        return self.rank_and_quantum(app, now)[0]
