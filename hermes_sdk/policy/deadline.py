"""Deadline-aware policies: LSTF (least slack first) and EDF (earliest deadline first).

Apps with a deadline always rank before apps without one: the latter get
``NO_DEADLINE_RANK_S + fallback rank``. Slack ranks fall one-for-one with time, so a rank computed
at ``t1`` is not comparable with one computed at ``t2``; queues that keep ranks over time compare
:meth:`order_key` instead, which is time-invariant (``rank + now`` for deadline apps).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from hermes_sdk.policy.base import AppState, DemandModel, Policy
from hermes_sdk.policy.gittins import GittinsPolicy

NO_DEADLINE_RANK_S: Final = 1e9
"""Offset added to the rank of apps without (or demoted from) a deadline class, seconds."""
NO_DEADLINE_KEY_S: Final = 1e12
"""Offset of the time-invariant order key of apps without a deadline (beyond any clock)."""


class LSTFPolicy:
    """Least slack time first: slack = deadline - now - q-quantile of remaining demand (seconds).

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

    def _latest_start_s(self, app: AppState, now: float) -> float | None:
        """deadline - q-quantile of remaining demand, or None for the no-deadline class."""
        if app.deadline_s is None:
            return None
        samples = self.model.remaining_demand(app.app, app.state, tenant=app.tenant, n=self.n)
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
