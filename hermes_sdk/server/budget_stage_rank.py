"""The c-mu rule on a budgeted upstream: the waiting stage with the fewest pending tokens first.

A run that calls a hosted API leaves the queue between its stages (tool steps, the provider's
own latency, the app's code), so what the order of the budget's waiters controls is the *waits*
of the stages present, not the run's whole remaining work. Every waiting stage blocks its run at
the same cost, one second of completion time per second of wait, and occupies the budget for
its pending tokens over the refill rate. Minimising the sum of waits of the stages present is
then the c-mu rule (Smith's rule with equal weights): serve the stage of least budget seconds
first (docs/theory.md, section 10, "The waiting stage, not the run"):

    D = max(T / (TPM / 60), N / (RPM / 60)),   rank = D  (x deadline treatment, + aging)

where ``T`` is the tokens of the run's requests waiting on this upstream (their charges, known
exactly: prompt + ``max_tokens`` or the predicted output) and ``N`` their number. A stage that
fans out (map-reduce) ends only when all its sibling requests are served, so its size is the
*sum* of their charges: every waiter of the run is ranked by it, and re-ranked when a sibling
arrives or leaves (:meth:`StageRanker.queued`). A request without a run is a stage of its own.

The policy's starvation guard applies with the request's own wait as its age (the key adds
``enqueued / slowdown_cap``, the increase capped at ``max_boost_s`` as for slots): a waiting
stage of ``D`` budget seconds is never overtaken by a request arriving more than
``slowdown_cap * D`` seconds after it, and once best its reservation bounds the rest
(:mod:`~hermes_sdk.server.budget_backfill`). When a run's requests queue back to back (no gap
between stages), its whole remaining demand is what waits and the Gittins rank on it is the
right one instead (:mod:`~hermes_sdk.server.budget_rank`, ``budget_rank="run"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hermes_sdk.policy.aging import AgingPolicy
from hermes_sdk.server.budget import UpstreamBudget


@dataclass(slots=True)
class _Pending:
    tokens: float = 0.0
    requests: int = 0


class StageRanker:
    """Ranks one budgeted upstream's waiters by their stage's pending budget seconds.

    ``rerank(run_key)`` is called when a run's pending stage changes (the admission queue's
    :meth:`~hermes_sdk.server.admission.AdmissionQueue.rerank`); ``clock`` is the admission
    queue's (monotonic seconds), the one its ``waited_s`` is measured on; ``deadline(run_key,
    rank_s)`` applies the policy's deadline treatment to a stage's rank before aging.
    """

    def __init__(
        self,
        budget: UpstreamBudget,
        aging: AgingPolicy | None,
        rerank: Callable[[Hashable], int],
        clock: Callable[[], float],
        deadline: Callable[[Hashable | None, float], float] | None = None,
    ) -> None:
        self._budget = budget
        self._aging = aging
        self._deadline = deadline
        """The policy's deadline treatment of a rank (:class:`~.budget_deadline.DeadlineScale`)."""
        self._rerank = rerank
        self._clock = clock
        self._pending: dict[Hashable, _Pending] = {}
        """run_key -> tokens and number of its requests waiting on this upstream."""

    @contextmanager
    def queued(
        self, run_key: Hashable, app: str | None, node: str, cost: float = 0.0
    ) -> Iterator[None]:
        """A request of ``cost`` tokens of run ``run_key`` waits while the block runs (``app``
        and ``node`` are not used: the stage is what the run has waiting, whatever its node)."""
        entry = self._pending.setdefault(run_key, _Pending())
        entry.tokens += cost
        entry.requests += 1
        self._rerank(run_key)  # its waiting siblings: the stage grew
        try:
            yield
        finally:
            entry.tokens -= cost
            entry.requests -= 1
            if entry.requests <= 0:
                self._pending.pop(run_key, None)
            else:
                self._rerank(run_key)  # the stage shrank: its other waiters move up

    def stage_s(self, run_key: Hashable | None, cost: float) -> float:
        """Budget seconds of the stage a request of ``cost`` tokens of ``run_key`` waits in."""
        entry = self._pending.get(run_key) if run_key is not None else None
        tokens, requests = (cost, 1) if entry is None else (max(entry.tokens, cost), entry.requests)
        return self._budget.seconds_of(tokens, requests)

    def rank(self, run_key: Hashable | None, waited_s: float, cost: float) -> float:
        """Rank (seconds, lower first) of a request of ``cost`` tokens that waited ``waited_s``."""
        rank = self.stage_s(run_key, cost)
        if self._deadline is not None:
            rank = self._deadline(run_key, rank)
        if self._aging is not None:
            now = self._clock()
            rank += self._aging.age_key(now - waited_s, now)
        return rank if math.isfinite(rank) else math.inf
