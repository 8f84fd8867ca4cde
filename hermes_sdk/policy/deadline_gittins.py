"""Deadline Gittins: the Gittins index of a run whose reward is meeting its deadline.

A run with a deadline earns its reward (a hit) only in the worlds where it can still finish in
time. With ``s`` seconds left to the deadline and samples of the run's remaining latency ``L``
(wall-clock, when served without waiting) and remaining service ``R``, the feasible share is
``p = P(L <= s)``. Big runs are the slow ones (service and latency grow together along a path),
so the feasible worlds are taken to be the ``f = ceil(p m)`` smallest of the ``m`` service samples
``r_1 <= ... <= r_m`` (a comonotone coupling of ``R`` and ``L``; the PDGraph samples them
separately). Two indices rank a feasible run (``index=``):

- ``"hit"`` (the default): the Gittins index for a reward of 1 on a hit, the best ratio over
  quanta of the chance to finish *by the deadline* within the quantum to the expected service the
  quantum costs, in every world (the infeasible ones pay for it too)::

      G_hit = max_{k <= f} k / (r_1 + ... + r_k + (m - k) r_k)

  It is the plain Gittins index over quanta up to the largest feasible size: equal to it while the
  deadline does not cut the plain index's quantum, lower for a run at risk of missing. An earlier
  deadline never raises it.
- ``"conditional"``: the Gittins index of ``R`` restricted to the feasible worlds,
  ``max_{k <= f} k / (r_1 + ... + r_k + (f - k) r_k)``; an earlier deadline never lowers it
  (urgency raises priority). Measured, it met fewer deadlines (docs/theory.md, "Deadlines").

Both equal the plain Gittins index when ``p = 1``. A run that would still make its deadline in
at least ``slack_q`` of its worlds if served from now on (``p >= slack_q``) ranks no later than
its slack ``s - L_q`` (``L_q`` the ``slack_q`` quantile of ``L``, seconds): on the one rank scale
it yields only to runs whose rank is below the time it can afford to wait (the slack cap; runs
at risk of missing get no cap, so they cannot set off LSTF's domino effect). Below ``p_min``
(hopeless: it would miss even if served alone from now on in all but a sliver of worlds) the run
drops behind every feasible run and every run without a deadline, where it keeps its plain
Gittins order (it still finishes; it no longer delays runs that can make it). Serving the run for
the quantum ``r_k <= r_f`` that attains the maximum either finishes it or shows it is bigger than
every feasible size, when the next re-rank finds it hopeless. Runs without a deadline keep the
plain Gittins rank, so both classes share one scale. The derivation and the brute-force checks
are in docs/theory.md ("Deadlines").
"""

from __future__ import annotations

import math
from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hermes_sdk.policy.base import AppState, DemandModel
from hermes_sdk.policy.deadline import LatencyModel
from hermes_sdk.policy.gittins import MIN_RESIDUAL_S, GittinsPolicy, gittins_index_and_quantum

IndexRule = Literal["hit", "conditional"]
"""Which deadline index ranks a feasible run (see the module docstring)."""
INDEX_RULES: Final[tuple[IndexRule, ...]] = ("hit", "conditional")

HOPELESS_RANK_S: Final = 1e9
"""Offset added to the plain Gittins rank of a hopeless run (seconds): behind every other run."""
DEFAULT_P_MIN: Final = 0.05
"""A run whose chance to meet its deadline is below this share is hopeless."""
DEFAULT_SLACK_Q: Final = 0.9
"""Latency quantile of the slack cap: a run feasible in at least this share of its worlds ranks no
later than ``deadline - now - L_q`` (seconds). Chosen on seed 1 of the deadline sweep among 0.2,
0.5 and 0.9 (lower quantiles promote runs at risk and lost hits with every run carrying a deadline;
docs/theory.md, "The slack cap")."""
DEFAULT_QUEUE_Q: Final = 0.15
"""Latency quantile of the queue-wide pass (:meth:`DeadlineGittinsPolicy.queue_plan`): a run that
fits its deadline in at least this share of its worlds if served now is a candidate, with its
latest start at ``deadline - L_q``. Moore-Hodgson, not this threshold, keeps the domino effect
out, so it can be low; chosen on seeds 1 and 4 among 0.9, 0.5, 0.3, 0.15 and 0.05 (docs/theory.md,
"The queue-wide pass")."""
DEFAULT_WEIGHT: Final = 3.0
"""Reward of a deadline hit, in completions of a run without a deadline (the index's scale).
3 with the hit index: the 22% SLO mix's runs without a deadline stay within 5% of plain Gittins
(docs/theory.md, "One rank scale, and the weight")."""


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


def slack_at_quantile(latency_s: ArrayLike, slack_s: float, q: float) -> float:
    """``slack_s - L_q`` (seconds): the time left after the ``q`` quantile of the remaining-latency
    samples (the order statistic ``L_(ceil(q m))``, so the result is >= 0 exactly when
    ``feasible_share(latency_s, slack_s) >= ceil(q m) / m``). No samples: ``slack_s``."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be within (0, 1], got {q!r}")
    lat = np.asarray(latency_s, dtype=np.float64).ravel()
    if lat.size == 0:
        return slack_s
    k = min(lat.size, max(1, math.ceil(q * lat.size - 1e-9))) - 1
    return slack_s - float(np.partition(lat, k)[k])


def _feasible_count(arr: NDArray[np.float64], feasible: float, p_min: float) -> int | None:
    """``f = ceil(feasible * m)`` (1 to m) for samples ``arr``, or None if the run is hopeless."""
    if not 0.0 <= feasible <= 1.0:
        raise ValueError(f"feasible must be within [0, 1], got {feasible!r}")
    if not 0.0 <= p_min <= 1.0:
        raise ValueError(f"p_min must be within [0, 1], got {p_min!r}")
    if feasible <= 0.0 or feasible < p_min:
        return None
    if arr.size == 0:
        raise ValueError("the deadline index needs at least one demand sample")
    return min(arr.size, max(1, math.ceil(feasible * arr.size - 1e-9)))


def deadline_index_and_quantum(
    demand_s: ArrayLike, feasible: float, *, p_min: float = DEFAULT_P_MIN
) -> tuple[float, float] | None:
    """``(index, quantum_s)`` of the *conditional* deadline index (1/s, seconds), or None if
    hopeless.

    ``demand_s`` are samples of remaining service (seconds); ``feasible`` is the share of worlds
    in which the run can still meet its deadline (:func:`feasible_share`). The index is the
    Gittins index of the ``ceil(feasible * m)`` smallest samples; below ``p_min`` the run is
    hopeless (None). ``feasible = 1`` gives :func:`gittins_index_and_quantum` of all samples.
    """
    arr = np.asarray(demand_s, dtype=np.float64).ravel()
    f = _feasible_count(arr, feasible, p_min)
    if f is None:
        return None
    if f == arr.size:
        return gittins_index_and_quantum(arr)
    return gittins_index_and_quantum(np.partition(arr, f - 1)[:f])


def hit_index_and_quantum(
    demand_s: ArrayLike, feasible: float, *, p_min: float = DEFAULT_P_MIN
) -> tuple[float, float] | None:
    """``(index, quantum_s)`` of the Gittins index for a reward of 1 on a deadline hit (1/s,
    seconds), or None if hopeless.

    ``max_{k <= f} k / (r_1 + ... + r_k + (m - k) r_k)`` over the sorted samples ``r`` of
    remaining service (seconds), ``f = ceil(feasible * m)``: the chance to finish by the deadline
    within the quantum ``r_k`` over the expected service that quantum costs in *every* world.
    Never above the plain index; ``feasible = 1`` gives :func:`gittins_index_and_quantum`.
    Samples below ``MIN_RESIDUAL_S`` count as that much (as in the plain index).
    """
    arr = np.asarray(demand_s, dtype=np.float64).ravel()
    f = _feasible_count(arr, feasible, p_min)
    if f is None:
        return None
    if f == arr.size:
        return gittins_index_and_quantum(arr)
    if not np.isfinite(arr).all():
        raise ValueError("the deadline index needs finite demand samples")
    head = np.sort(np.partition(arr, f - 1)[:f])
    np.maximum(head, MIN_RESIDUAL_S, out=head)
    k = np.arange(1, f + 1, dtype=np.float64)
    ratio = k / (np.cumsum(head) + (arr.size - k) * head)
    best = int(np.argmax(ratio))
    return float(ratio[best]), float(head[best])


class DeadlineGittinsPolicy:
    """Gittins for every run; runs with a deadline rank by the deadline index (seconds).

    Rank = ``1 / (weight G_d)`` for a feasible deadline run (``G_d`` the ``index`` rule's
    index: ``"hit"``, the default, or ``"conditional"``), capped at its slack
    ``deadline - now - L_q`` when that is >= 0 (``q = slack_q``; None: no cap; ``"auto"``:
    :data:`DEFAULT_SLACK_Q` for the hit rule, no cap for the conditional one, whose rank the cap
    would make jump up where ``p`` falls below ``q``),
    ``HOPELESS_RANK_S + plain rank`` for a hopeless one, the plain Gittins rank (of ``inner``) for
    a run without a deadline. Remaining
    latency comes from the model when it is a :class:`LatencyModel` (the PDGraph registry, the
    simulator's oracle); otherwise remaining service stands in for it (an upper bound for runs
    with parallel calls, so feasibility is judged conservatively). With ``queue_pass`` a scheduler
    that sees the whole queue also applies the queue-wide feasibility pass
    (:mod:`~hermes_sdk.policy.deadline_queue`) to these ranks, with :meth:`queue_plan` per run.
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
        index: IndexRule = "hit",
        slack_q: float | Literal["auto"] | None = "auto",
        inner: GittinsPolicy | None = None,
        queue_pass: bool = False,
        queue_q: float = DEFAULT_QUEUE_Q,
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
        if index not in INDEX_RULES:
            raise ValueError(f"index must be one of {INDEX_RULES}, got {index!r}")
        self.index: IndexRule = index
        if slack_q == "auto":  # the cap would break the conditional rule's monotonicity
            slack_q = DEFAULT_SLACK_Q if index == "hit" else None
        if slack_q is not None and not 0.0 < slack_q <= 1.0:
            raise ValueError(f"slack_q must be within (0, 1] or None, got {slack_q!r}")
        self.slack_q: float | None = slack_q
        self._index_fn = hit_index_and_quantum if index == "hit" else deadline_index_and_quantum
        self.inner = inner if inner is not None else GittinsPolicy(model, n=n)
        self._latency: LatencyModel | None = model if isinstance(model, LatencyModel) else None
        if not 0.0 < queue_q <= 1.0:
            raise ValueError(f"queue_q must be within (0, 1], got {queue_q!r}")
        self.queue_q = queue_q
        self.queue_pass = queue_pass
        """Schedulers that see a whole queue reorder it with :func:`~.deadline_queue.
        feasibility_keys` on :meth:`queue_plan` (the simulator's engines)."""

    def feasible(self, app: AppState, now: float) -> float:
        """``P(remaining latency <= deadline - now)`` for a run with a deadline (0 to 1)."""
        assert app.deadline_s is not None
        return feasible_share(self._remaining_latency(app), app.deadline_s - now)

    def _remaining_latency(self, app: AppState) -> NDArray[np.float64]:
        """Samples of remaining latency (seconds); remaining service without a latency model."""
        if self._latency is not None:
            return self._latency.remaining_latency(app.app, app.state, tenant=app.tenant, n=self.n)
        return self._demand(app)

    def _demand(self, app: AppState) -> NDArray[np.float64]:
        return self.model.remaining_demand(app.app, app.state, tenant=app.tenant, n=self.n)

    def rank_and_quantum(self, app: AppState, now: float) -> tuple[float, float]:
        """``(rank_s, quantum_s)``: the rank and the service after which to re-rank."""
        if app.deadline_s is None:
            return self.inner.rank_and_quantum(app, now)
        lat = self._remaining_latency(app)
        slack = app.deadline_s - now
        p = feasible_share(lat, slack)
        if p >= 1.0:  # the plain index (and its memo)
            rank, quantum = self.inner.rank_and_quantum(app, now)
            rank /= self.weight
        else:
            hit = self._index_fn(self._demand(app), p, p_min=self.p_min)
            if hit is None:
                rank, quantum = self.inner.rank_and_quantum(app, now)
                return HOPELESS_RANK_S + rank, quantum
            rank, quantum = 1.0 / (self.weight * hit[0]), hit[1]
        if self.slack_q is not None and p >= self.slack_q:
            left = slack_at_quantile(lat, slack, self.slack_q)
            if left >= 0.0:
                rank = min(rank, left)
        return rank, quantum

    def rank(self, app: AppState, now: float) -> float:
        """The rank in seconds (lower first); see the class docstring."""
        return self.rank_and_quantum(app, now)[0]

    def queue_plan(self, app: AppState, now: float) -> tuple[float, float]:
        """``(work_s, start_by_s)`` for the queue-wide pass (:mod:`~.deadline_queue`): the mean
        remaining service (seconds) and the latest time (on the clock of ``now``) the run may
        still start to make its deadline in a ``queue_q`` share of its worlds, ``deadline -
        L_q`` (``q = queue_q``); NaN when it has no deadline, fits in fewer than that share
        (``p < queue_q``) or is hopeless. ``start_by_s`` does not move with the clock."""
        work = float(np.mean(self._demand(app)))
        if app.deadline_s is None:
            return work, math.nan
        lat = self._remaining_latency(app)
        slack = app.deadline_s - now
        q = self.queue_q
        if feasible_share(lat, slack) < max(q, self.p_min):
            return work, math.nan
        left = slack_at_quantile(lat, slack, q)
        return work, (now + left if left >= 0.0 else math.nan)
