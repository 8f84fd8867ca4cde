"""Backfilling under a rate budget: the best waiter that does not fit holds a reservation.

A budgeted queue grants its waiters in the policy's order, but a token bucket refills slowly:
when the best waiter needs more tokens than the bucket holds, granting nobody until it fits
wastes nothing yet makes every cheaper request wait behind it (head-of-line blocking), while
letting cheaper ones overtake it freely can starve it (each one takes the tokens it waits for).
EASY backfilling's answer, with budget seconds in place of nodes: the best waiter that does not
fit *reserves* the budget, with a due time

    due = now + wait * (1 + BACKFILL_SLACK) + MIN_SLACK_S

(``wait``: seconds until its tokens have accrued, when it first became the best). A worse-ranked
waiter (among the :data:`BACKFILL_SCAN` best) is granted now only if it fits now and the holder
still fits by ``due`` after it was charged. So backfilling never delays the best waiter past its
due time, at most twice its wait plus ``MIN_SLACK_S`` (unless the provider itself shrinks the
budget: a lower limit or ``remaining`` in its headers, a ``Retry-After``, or calls that used more
tokens than estimated), and a waiter behind it goes ahead only with tokens it does not need by
then. A *better*-ranked waiter that arrives meanwhile takes the reservation: the bucket's tokens
are not tied to anyone, so serving by rank is preemptive-resume for free, which is what the
Gittins order needs (what keeps a low-ranked run from waiting forever behind better ones is the
policy's starvation guard, as for slots). A waiter that is best again keeps its first due time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

BACKFILL_SLACK: Final = 1.0
"""Others may delay the holder by this fraction of the wait it had when it reserved (1.0: its
wait at most doubles)."""
MIN_SLACK_S: Final = 0.05
"""... plus this many seconds (a holder one token short may still let a small call by)."""
BACKFILL_SCAN: Final = 32
"""Waiters (best first) a queue offers for backfilling per grant."""
DUES_KEPT: Final = 256
"""Due times kept before those of departed waiters are dropped."""
MIN_RETRY_S: Final = 0.002
"""Shortest wait before the queue asks the budget again, seconds."""


@dataclass(slots=True)
class Reserved:
    """The reservation of one budget: whose it is (the queue's waiter ``seq``), its tokens,
    and the monotonic time by which it must be granted."""

    seq: int | None = None
    tokens: float = 0.0
    due_s: float = math.inf
    dues: dict[int, float] = field(default_factory=dict)
    """Due times by waiter: one that was best, lost the place to a better one and is best
    again keeps its first due time."""


class Reservable(Protocol):
    """What backfilling asks of a budget (:class:`~hermes_sdk.server.budget.UpstreamBudget`)."""

    def now_s(self) -> float:
        """The budget's monotonic clock, seconds."""
        ...

    def wait_s(self, cost_tokens: float, now_s: float | None = None) -> float:
        """Seconds until ``cost_tokens`` may be sent (0.0: now)."""
        ...

    def try_take(self, cost_tokens: float) -> float:
        """Charge now and return 0.0, or charge nothing and return the seconds to wait."""
        ...

    def try_take_before(self, cost_tokens: float, reserved_tokens: float, due_s: float) -> bool:
        """Charge now only if ``reserved_tokens`` still fit by ``due_s`` afterwards."""
        ...


def admit(
    budget: Reservable,
    reserved: Reserved,
    order: Iterable[tuple[int, float]],
    cost_of: Callable[[int], float | None],
) -> tuple[int | None, float]:
    """The waiter to grant now, charged: ``(seq, 0.0)``; or ``(None, seconds)`` until asking
    again is worthwhile. ``order`` is (seq, tokens) of live waiters, best first; ``cost_of``
    gives a waiter's tokens, None once it has left."""
    now = budget.now_s()
    if len(reserved.dues) > DUES_KEPT:  # forget the due times of waiters that left
        reserved.dues = {s: d for s, d in reserved.dues.items() if cost_of(s) is not None}
    retry_s = math.inf
    best = True
    for seq, tokens in order:
        if best:  # the policy's best waiter: granted if it fits, else it holds the reservation
            best = False
            wait = budget.try_take(tokens)
            if wait == 0.0:
                reserved.dues.pop(seq, None)
                return seq, 0.0
            due = reserved.dues.setdefault(seq, now + wait * (1.0 + BACKFILL_SLACK) + MIN_SLACK_S)
            reserved.seq, reserved.tokens, reserved.due_s = seq, tokens, due
            retry_s = wait
            continue
        if budget.try_take_before(tokens, reserved.tokens, reserved.due_s):
            return seq, 0.0
        wait = budget.wait_s(tokens, now)  # worth waking for if the holder still fits by due
        if wait > 0.0 and now + budget.wait_s(tokens + reserved.tokens, now) <= reserved.due_s:
            retry_s = min(retry_s, wait)
    return None, max(MIN_RETRY_S, retry_s if math.isfinite(retry_s) else MIN_RETRY_S)
