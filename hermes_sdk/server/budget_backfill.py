"""Backfilling under a rate budget: the best waiter that does not fit holds a reservation.

A budgeted queue grants its waiters in the policy's order, but a token bucket refills slowly:
when the best waiter needs more tokens than the bucket holds, granting nobody until it fits
wastes nothing yet makes every cheaper request wait behind it (head-of-line blocking), while
letting cheaper ones overtake it freely can starve it (each one takes the tokens it waits for).
EASY backfilling's answer, with budget seconds in place of nodes: the best waiter that does not
fit *reserves* the budget, with a due time

    due = now + wait * (1 + BACKFILL_SLACK) + MIN_SLACK_S

(``wait``: seconds until its tokens have accrued, when it took the reservation). Then, scanning
the :data:`BACKFILL_SCAN` best waiters in the policy's order: a waiter ranked above the holder
(it arrived later) is waited for first if it *and then* the holder both fit by ``due``; any other
waiter is granted now only if it fits now and what the queue waits for (the holder, and the
better one if any) still fits by ``due`` after it was charged. So the holder is admitted by
``due``, its wait at most doubled plus ``MIN_SLACK_S`` (unless the provider itself shrinks the
budget: a lower limit or ``remaining`` in its headers, a ``Retry-After``, or calls that used more
tokens than estimated), whatever arrives meanwhile; a waiter behind it goes ahead only with
tokens the holder does not need by then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

BACKFILL_SLACK: Final = 1.0
"""Others may delay the holder by this fraction of the wait it had when it reserved (1.0: its
wait at most doubles)."""
MIN_SLACK_S: Final = 0.05
"""... plus this many seconds (a holder one token short may still let a small call by)."""
BACKFILL_SCAN: Final = 32
"""Waiters (best first) a queue offers for backfilling per grant."""
MIN_RETRY_S: Final = 0.002
"""Shortest wait before the queue asks the budget again, seconds."""


@dataclass(slots=True)
class Reserved:
    """The reservation of one budget: whose it is (the queue's waiter ``seq``), its tokens,
    and the monotonic time by which it must be granted."""

    seq: int | None = None
    tokens: float = 0.0
    due_s: float = math.inf


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
    gives a waiter's tokens, None once it has left (its reservation is then dropped)."""
    now = budget.now_s()
    if reserved.seq is not None and cost_of(reserved.seq) is None:  # the holder left
        reserved.seq, reserved.due_s = None, math.inf
    retry_s = math.inf
    extra: float | None = None
    """Tokens of the waiter the queue waits for, beyond the holder's (None: not chosen yet)."""
    for seq, tokens in order:
        if reserved.seq is None:  # the best waiter does not fit: it reserves
            wait = budget.try_take(tokens)
            if wait == 0.0:
                return seq, 0.0
            reserved.seq, reserved.tokens = seq, tokens
            reserved.due_s = now + wait * (1.0 + BACKFILL_SLACK) + MIN_SLACK_S
            extra, retry_s = 0.0, wait
            continue
        if seq == reserved.seq:
            if extra is None and budget.try_take(tokens) == 0.0:  # nobody better to wait for
                return _granted(reserved)
            extra = 0.0 if extra is None else extra
            continue
        held = reserved.tokens + (extra or 0.0)
        if budget.try_take_before(tokens, held, reserved.due_s):
            return seq, 0.0
        if now + budget.wait_s(tokens + held, now) <= reserved.due_s:  # it, then the rest, in time
            retry_s = min(retry_s, budget.wait_s(tokens, now))
            if extra is None:  # ranked above the holder: the queue waits for it first
                extra = tokens
    if reserved.seq is not None:
        if extra is None and budget.try_take(reserved.tokens) == 0.0:  # beyond the scan
            return _granted(reserved)
        retry_s = min(retry_s, budget.wait_s(reserved.tokens, now))
    return None, max(MIN_RETRY_S, retry_s if math.isfinite(retry_s) else MIN_RETRY_S)


def _granted(reserved: Reserved) -> tuple[int | None, float]:
    """The holder is granted (already charged): its reservation ends."""
    seq = reserved.seq
    reserved.seq, reserved.due_s = None, math.inf
    return seq, 0.0
