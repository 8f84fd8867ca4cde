"""Deadline-aware policies: LSTF (least slack first) and EDF (earliest deadline first).

LSTF's slack is measured against the predicted remaining *latency* (wall-clock time) when the
model offers it (:class:`LatencyModel`, e.g. the PDGraph registry or the simulator's oracle):
deadlines are on latency, and a wide fan-out's remaining service (summed over its parallel
calls) can be many times its remaining latency, which would give wide apps hugely negative slack
and let them hog the engine. Models without it fall back to remaining service.

Apps with a deadline always rank before apps without one: the latter get
``NO_DEADLINE_RANK_S + fallback rank``. Slack ranks fall one-for-one with time, so a rank computed
at ``t1`` is not comparable with one computed at ``t2``; queues that keep ranks over time compare
:meth:`order_key` instead, which is time-invariant (``rank + now`` for deadline apps).
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.records import RunState
from hermes_sdk.policy.base import AppState, DemandModel, Policy
from hermes_sdk.policy.gittins import GittinsPolicy

NO_DEADLINE_RANK_S: Final = 1e9
"""Offset added to the rank of apps without (or demoted from) a deadline class, seconds."""
NO_DEADLINE_KEY_S: Final = 1e12
"""Offset of the time-invariant order key of apps without a deadline (beyond any clock)."""


@runtime_checkable
class LatencyModel(Protocol):
    """A demand model that can also predict remaining wall-clock time (seconds)."""

    def remaining_latency(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        """Samples (seconds) of the remaining latency of a run of ``app`` in ``state``."""
        ...


class LSTFPolicy:
    """Least slack time first: slack = deadline - now - q-quantile of remaining latency (seconds).

    Remaining latency comes from ``model.remaining_latency`` when the model is a
    :class:`LatencyModel`, else remaining service (``remaining_demand``) stands in for it.

    Apps with a deadline rank by slack, before every app without one; the others are ordered by
    ``fallback`` (default: Gittins on the same model). With ``demote_infeasible`` an app whose
    deadline can no longer be met even by its optimistic (``1 - q`` quantile) remaining demand
    is moved to the no-deadline class, so hopeless apps stop delaying those that can still make it.
    """

    name = "lstf"
    dynamic = True
    time_varying = True

    def __init__(
        self,
        model: DemandModel,
        *,
        q: float = 0.95,
        demote_infeasible: bool = False,
        fallback: Policy | None = None,
        n: int = 1000,
    ) -> None:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be within [0, 1], got {q}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.model = model
        self.q = q
        self.demote_infeasible = demote_infeasible
        self.fallback: Policy = fallback if fallback is not None else GittinsPolicy(model, n=n)
        self.n = n
        self._latency: LatencyModel | None = model if isinstance(model, LatencyModel) else None

    def _remaining_s(self, app: AppState) -> NDArray[np.float64]:
        """Samples of the app's remaining latency (service if the model has no latency)."""
        if self._latency is not None:
            return self._latency.remaining_latency(app.app, app.state, tenant=app.tenant, n=self.n)
        return self.model.remaining_demand(app.app, app.state, tenant=app.tenant, n=self.n)

    def _latest_start_s(self, app: AppState, now: float) -> float | None:
        """deadline - q-quantile of remaining latency, or None for the no-deadline class."""
        if app.deadline_s is None:
            return None
        samples = self._remaining_s(app)
        if len(samples) == 0:
            return app.deadline_s
        if self.demote_infeasible:
            optimistic = float(np.quantile(samples, 1.0 - self.q))
            if app.deadline_s - now < optimistic:
                return None
        return app.deadline_s - float(np.quantile(samples, self.q))

    def rank(self, app: AppState, now: float) -> float:
        """Slack in seconds for deadline apps; ``NO_DEADLINE_RANK_S + fallback`` for others."""
        latest = self._latest_start_s(app, now)
        if latest is None:
            return NO_DEADLINE_RANK_S + self.fallback.rank(app, now)
        return latest - now

    def order_key(self, app: AppState, now: float) -> float:
        """Time-invariant sort key with the same order as :meth:`rank` at any common ``now``."""
        latest = self._latest_start_s(app, now)
        if latest is None:
            return NO_DEADLINE_KEY_S + self.fallback.rank(app, now)
        return latest


class EDFPolicy:
    """Earliest deadline first: rank = time to deadline (seconds); apps without one come after,
    in arrival order."""

    name = "edf"
    dynamic = False
    time_varying = True

    def rank(self, app: AppState, now: float) -> float:
        """``deadline - now`` for deadline apps, else ``NO_DEADLINE_RANK_S + (arrival - now)``."""
        if app.deadline_s is None:
            return NO_DEADLINE_RANK_S + (app.arrival_s - now)
        return app.deadline_s - now

    def order_key(self, app: AppState, now: float) -> float:
        """Time-invariant sort key: the deadline, or ``NO_DEADLINE_KEY_S + arrival``."""
        if app.deadline_s is None:
            return NO_DEADLINE_KEY_S + app.arrival_s
        return app.deadline_s
