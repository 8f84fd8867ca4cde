"""The clairvoyant deadline frontier (bench only): SRPT plus Moore-Hodgson on true sizes.

``deadline_oracle`` is ``srpt_oracle`` extended with deadlines, to measure what *any* deadline
policy could reach on a workload if it knew every run's true remaining service and latency (the
simulator sets :attr:`~hermes_sdk.policy.base.AppState.true_remaining_s` and, because this policy
sets ``clairvoyant_latency``, ``true_remaining_latency_s``):

- a run without a deadline ranks by its true remaining service (SRPT);
- a deadline run that can still make it served alone from now (``now + latency <= deadline``)
  ranks by its true remaining service over ``weight`` (the reward of a hit in completions of a
  run without a deadline, as in deadline Gittins); one that cannot ranks
  ``HOPELESS_RANK_S +`` its size, behind everything;
- the queue-wide pass (:func:`~hermes_sdk.policy.deadline_queue.feasibility_keys`, the same code
  ``gittins_queue`` uses, here on true sizes) keeps the largest set of deadline runs that can all
  start in time (Moore-Hodgson, latest start ``deadline - true latency``) and moves each only up
  to its latest start.

It is not an optimum (the multi-slot fluid model and the tool stages are approximations; see
docs/theory.md section 4b.2), but it removes every prediction error: a target it cannot reach
while keeping runs without a deadline within 5% of plain Gittins is out of reach of the
predictive policies on that workload. A live scheduler cannot honour it
(``SIMULATOR_ONLY_POLICIES``).
"""

from __future__ import annotations

import math
from typing import Final

from hermes_sdk.policy.base import AppState
from hermes_sdk.policy.deadline_gittins import HOPELESS_RANK_S

ORACLE_EPS_S: Final = 1e-9
"""Tolerance (seconds) of the clairvoyant feasibility test (float round-off of the clock)."""


class DeadlineOraclePolicy:
    """Clairvoyant deadline scheduling (module docstring); ranks in seconds, lower first."""

    name = "deadline_oracle"
    dynamic = True
    queue_pass = True
    """The simulator applies the queue-wide pass with :meth:`queue_plan` (true sizes)."""
    clairvoyant_latency = True
    """Asks the simulator for ``AppState.true_remaining_latency_s``."""

    def __init__(self, *, weight: float = 1.0) -> None:
        if not (math.isfinite(weight) and weight > 0.0):
            raise ValueError(f"weight must be finite and > 0, got {weight!r}")
        self.weight = weight

    @staticmethod
    def _size(app: AppState) -> float:
        """True remaining service (seconds); ``inf`` where the simulator did not set it."""
        return app.true_remaining_s if app.true_remaining_s is not None else math.inf

    @staticmethod
    def _latency(app: AppState) -> float:
        """True remaining latency served alone (seconds); the service where it is not set (an
        upper bound: parallel calls overlap)."""
        if app.true_remaining_latency_s is not None:
            return app.true_remaining_latency_s
        return DeadlineOraclePolicy._size(app)

    def can_make_it(self, app: AppState, now: float) -> bool:
        """True if ``app`` has a deadline it meets when served alone from ``now`` on."""
        if app.deadline_s is None:
            return False
        return now + self._latency(app) <= app.deadline_s + ORACLE_EPS_S

    def rank(self, app: AppState, now: float) -> float:
        """True remaining service; over ``weight`` for a deadline run that can still make it,
        ``HOPELESS_RANK_S +`` it for one that cannot (seconds)."""
        size = self._size(app)
        if app.deadline_s is None:
            return size
        if self.can_make_it(app, now):
            return size / self.weight
        return HOPELESS_RANK_S + size

    def queue_plan(self, app: AppState, now: float) -> tuple[float, float]:
        """``(work_s, start_by_s)`` for the queue-wide pass: the true remaining service and the
        latest start that still meets the deadline (``deadline - true latency``, absolute
        seconds); NaN for a run without a deadline or one that cannot make it."""
        size = self._size(app)
        if not self.can_make_it(app, now):
            return size, math.nan
        assert app.deadline_s is not None
        return size, app.deadline_s - self._latency(app)
