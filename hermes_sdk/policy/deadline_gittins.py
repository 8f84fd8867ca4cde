"""Deadline Gittins: the Gittins index of a run *given that it can still meet its deadline*.

A run with a deadline earns its reward (a hit) only in the worlds where it can still finish in
time. With ``s`` seconds left to the deadline and samples of the run's remaining latency ``L``
(wall-clock, when served without waiting) and remaining service ``R``, the feasible share is
``p = P(L <= s)``. Big runs are the slow ones (service and latency grow together along a path),
so the feasible worlds are taken to be the ``ceil(p m)`` smallest of the ``m`` service samples
(a comonotone coupling of ``R`` and ``L``; the PDGraph samples them separately). The deadline
index is the Gittins index of ``R`` restricted to those worlds::

    G_d = max_{k <= f} k / (r_1 + ... + r_k + (f - k) r_k),   f = ceil(p m)

- ``p = 1`` (a far deadline): ``f = m`` and ``G_d`` is the plain Gittins index;
- an earlier deadline removes the largest samples, which never lowers the index (each ratio's
  denominator shrinks, and the last ratio ``f / sum r`` is at least the previous one because the
  removed sample is at least the mean), so urgency raises priority while the run is feasible;
- ``p < p_min`` (hopeless: it would miss even if served alone from now on in all but a sliver of
  worlds): the run drops behind every feasible run and every run without a deadline, where it
  keeps its plain Gittins order (it still finishes; it no longer delays runs that can make it).

Serving the run for the quantum ``r_k`` that attains the maximum either finishes it or shows it
is bigger than every feasible size, when the next re-rank finds it hopeless. Runs without a
deadline keep the plain Gittins rank, so both classes share one scale. The derivation and the
brute-force check are in docs/theory.md ("Deadlines").
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hermes_sdk.policy.base import AppState, DemandModel
from hermes_sdk.policy.deadline import LatencyModel
from hermes_sdk.policy.gittins import GittinsPolicy, gittins_index_and_quantum

HOPELESS_RANK_S: Final = 1e9
"""Offset added to the plain Gittins rank of a hopeless run (seconds): behind every other run."""
DEFAULT_P_MIN: Final = 0.05
"""A run whose chance to meet its deadline is below this share is hopeless."""
DEFAULT_WEIGHT: Final = 1.5
"""Reward of a deadline hit, in completions of a run without a deadline (the index's scale)."""


def feasible_share(latency_s: ArrayLike, slack_s: float) -> float:
    """``P(L <= slack_s)`` on the remaining-latency samples ``latency_s`` (seconds); 0 to 1.

    A run with no latency samples left (nothing remains) is feasible iff the slack is >= 0.
    """
    lat = np.asarray(latency_s, dtype=np.float64).ravel()
    if math.isnan(slack_s):
        raise ValueError("slack_s must not be NaN")
    if lat.size == 0:
        return 1.0 if slack_s >= 0.0 else 0.0
    return float(np.count_nonzero(lat <= slack_s)) / lat.size


def deadline_index_and_quantum(
    demand_s: ArrayLike, feasible: float, *, p_min: float = DEFAULT_P_MIN
) -> tuple[float, float] | None:
    """``(index, quantum_s)`` of the deadline Gittins index (1/s, seconds), or None if hopeless.

    ``demand_s`` are samples of remaining service (seconds); ``feasible`` is the share of worlds
    in which the run can still meet its deadline (:func:`feasible_share`). The index is the
    Gittins index of the ``ceil(feasible * m)`` smallest samples; below ``p_min`` the run is
    hopeless (None). ``feasible = 1`` gives :func:`gittins_index_and_quantum` of all samples.
    """
    if not 0.0 <= feasible <= 1.0:
        raise ValueError(f"feasible must be within [0, 1], got {feasible!r}")
    if not 0.0 <= p_min <= 1.0:
        raise ValueError(f"p_min must be within [0, 1], got {p_min!r}")
    if feasible <= 0.0 or feasible < p_min:
        return None
    arr = np.asarray(demand_s, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("deadline_index_and_quantum() needs at least one demand sample")
    f = min(arr.size, max(1, math.ceil(feasible * arr.size - 1e-9)))
    if f == arr.size:
        return gittins_index_and_quantum(arr)
    return gittins_index_and_quantum(np.partition(arr, f - 1)[:f])


class DeadlineGittinsPolicy:
    """Gittins for every run; runs with a deadline rank by the deadline index (seconds).

    Rank = ``1 / G_d`` for a feasible deadline run, ``HOPELESS_RANK_S + plain rank`` for a
    hopeless one, the plain Gittins rank (of ``inner``) for a run without a deadline. Remaining
    latency comes from the model when it is a :class:`LatencyModel` (the PDGraph registry, the
    simulator's oracle); otherwise remaining service stands in for it (an upper bound for runs
    with parallel calls, so feasibility is judged conservatively).
    """

    name = "gittins"
    dynamic = True

    def __init__(
        self,
        model: DemandModel,
        *,
        n: int = 1000,
        p_min: float = DEFAULT_P_MIN,
        weight: float = DEFAULT_WEIGHT,
        inner: GittinsPolicy | None = None,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not 0.0 <= p_min <= 1.0:
            raise ValueError(f"p_min must be within [0, 1], got {p_min!r}")
        self.model = model
        self.n = n
        self.p_min = p_min
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(f"weight must be finite and > 0, got {weight!r}")
        self.weight = weight
        self.inner = inner if inner is not None else GittinsPolicy(model, n=n)
        self._latency: LatencyModel | None = model if isinstance(model, LatencyModel) else None

    def feasible(self, app: AppState, now: float) -> float:
        """``P(remaining latency <= deadline - now)`` for a run with a deadline (0 to 1)."""
        assert app.deadline_s is not None
        if self._latency is not None:
            lat = self._latency.remaining_latency(app.app, app.state, tenant=app.tenant, n=self.n)
        else:
            lat = self._demand(app)
        return feasible_share(lat, app.deadline_s - now)

    def _demand(self, app: AppState) -> NDArray[np.float64]:
        return self.model.remaining_demand(app.app, app.state, tenant=app.tenant, n=self.n)

    def rank_and_quantum(self, app: AppState, now: float) -> tuple[float, float]:
        """``(rank_s, quantum_s)``: the rank and the service after which to re-rank."""
        if app.deadline_s is None:
            return self.inner.rank_and_quantum(app, now)
        p = self.feasible(app, now)
        if p >= 1.0:  # the plain index (and its memo)
            rank, quantum = self.inner.rank_and_quantum(app, now)
            return rank / self.weight, quantum
        hit = deadline_index_and_quantum(self._demand(app), p, p_min=self.p_min)
        if hit is None:
            rank, quantum = self.inner.rank_and_quantum(app, now)
            return HOPELESS_RANK_S + rank, quantum
        index, quantum = hit
        return 1.0 / (self.weight * index), quantum

    def rank(self, app: AppState, now: float) -> float:
        """The rank in seconds (lower first); see the class docstring."""
        return self.rank_and_quantum(app, now)[0]
