"""Deadlines on a budgeted upstream: the policy's own deadline treatment, applied to budget ranks.

On slots, deadline Gittins (:class:`~hermes_sdk.policy.deadline_gittins.DeadlineGittinsPolicy`,
the default ``gittins``) ranks a run with a deadline by ``rank_d`` where a run without one has
the plain Gittins rank ``rank_0``: lower (weighted, capped at its slack) while it can still make
its deadline, ``HOPELESS_RANK_S +`` its plain rank once it cannot. A budgeted upstream ranks its
waiters in budget seconds instead (:mod:`.budget_stage_rank`, :mod:`.budget_rank`), so the run
gets the same *relative* treatment there (docs/theory.md, section 10, "Deadlines on a budget")::

    budget rank_d = budget rank x rank_d / rank_0      (a run that can make it)
    budget rank_d = HOPELESS_RANK_S + budget rank      (a hopeless one)

with ``rank_d`` and ``rank_0`` the policy's own ranks of the run now (its :meth:`rank` and its
plain inner policy's): no second copy of the deadline math. A run without a deadline, or under a
policy without deadline Gittins, keeps its budget rank. LSTF and EDF order a budgeted upstream's
waiters by their slot rank already (only the Gittins family ranks in budget seconds).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable

from hermes_sdk.policy.base import Policy, wrapped_policies
from hermes_sdk.policy.deadline_gittins import HOPELESS_RANK_S, DeadlineGittinsPolicy
from hermes_sdk.server.scheduler import Scheduler

log = logging.getLogger("hermes_sdk.server.gateway")


def deadline_policy(policy: Policy) -> DeadlineGittinsPolicy | None:
    """The deadline Gittins policy among ``policy``'s wrappers (aging, fairness), if any."""
    found = (p for p in wrapped_policies(policy) if isinstance(p, DeadlineGittinsPolicy))
    return next(found, None)


class DeadlineScale:
    """Applies the scheduler's deadline Gittins treatment of a run to its budget rank."""

    def __init__(self, scheduler: Scheduler, policy: DeadlineGittinsPolicy) -> None:
        self._scheduler = scheduler
        self._policy = policy

    @classmethod
    def of(cls, scheduler: Scheduler) -> DeadlineScale | None:
        """The scale for ``scheduler``'s policy; None when it has no deadline Gittins."""
        policy = deadline_policy(scheduler.policy)
        return None if policy is None else cls(scheduler, policy)

    def apply(self, run_key: Hashable | None, budget_rank_s: float) -> float:
        """``budget_rank_s`` (seconds, before aging) of ``run_key``'s request, with its run's
        deadline treatment (unchanged for a run without a deadline or not tracked)."""
        if not isinstance(run_key, tuple) or not math.isfinite(budget_rank_s):
            return budget_rank_s
        run = self._scheduler.run(str(run_key[0]), str(run_key[1]))
        if run is None or run.deadline_s is None:
            return budget_rank_s
        now = self._scheduler.now_s()
        state = run.app_state(now)
        try:
            with_deadline = self._policy.rank(state, now)
            plain = self._policy.inner.rank(state, now)
        except Exception:  # a policy bug must not stall admission: the budget rank alone
            log.exception("deadline rank of %s/%s failed", state.app, state.run_id)
            return budget_rank_s
        if with_deadline >= HOPELESS_RANK_S:
            return HOPELESS_RANK_S + budget_rank_s
        if not (math.isfinite(with_deadline) and math.isfinite(plain) and plain > 0.0):
            return budget_rank_s  # nothing learned: no relative treatment to carry over
        return budget_rank_s * with_deadline / plain
