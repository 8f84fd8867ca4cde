"""Budgets of hosted model APIs: token buckets on requests per minute and tokens per minute.

A hosted provider (OpenAI, Anthropic, Azure OpenAI, ...) limits an organisation to ``rpm``
requests and ``tpm`` tokens per minute. :class:`UpstreamBudget` keeps one token bucket for each
(capacity = the per-minute limit, refilled continuously at limit / 60 per second), on an injectable
monotonic clock. The admission queue asks it before granting a request (:meth:`try_take` with the
request's token cost) and, when it says "not yet", retries after the seconds it returns, so order
among waiters stays the policy's. A response corrects the estimate with the real usage
(:meth:`settle`); the provider's rate-limit headers and ``Retry-After`` adapt the buckets
(:meth:`observe`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from hermes_sdk.server.budget_backfill import Reserved
from hermes_sdk.server.budget_backfill import admit as backfill_admit
from hermes_sdk.server.provider_limits import ProviderLimits

WINDOW_S: Final = 60.0
"""Providers state their limits per minute; a bucket refills ``limit / WINDOW_S`` per second."""


@dataclass(slots=True)
class TokenBucket:
    """``level`` units available of ``capacity``, refilled at ``rate_per_s``; times in seconds.

    The level may go negative (a request that cost more than estimated leaves a debt, paid back
    by the refill). A cost above the capacity is allowed once the bucket is full, so a single
    request larger than the whole budget still goes through (the provider decides).
    """

    capacity: float
    rate_per_s: float
    level: float
    updated_s: float

    @classmethod
    def per_minute(cls, limit: float, now_s: float, window_s: float = WINDOW_S) -> TokenBucket:
        """A full bucket for ``limit`` units per minute, enforced over ``window_s`` seconds
        (capacity ``limit * window_s / 60``: providers may enforce a minute's limit over shorter
        periods, OpenAI for one)."""
        rate = float(limit) / WINDOW_S
        return cls(rate * window_s, rate, rate * window_s, now_s)

    def refill(self, now_s: float) -> None:
        """Add what accrued since the last update (never beyond ``capacity``)."""
        if now_s > self.updated_s:
            self.level = min(self.capacity, self.level + (now_s - self.updated_s) * self.rate_per_s)
            self.updated_s = now_s

    def wait_s(self, cost: float, now_s: float) -> float:
        """Seconds until ``cost`` units can be taken (0.0: now)."""
        self.refill(now_s)
        need = min(cost, self.capacity)
        if self.level >= need:
            return 0.0
        return (need - self.level) / self.rate_per_s

    def resize(self, limit: float, now_s: float) -> None:
        """Adopt a new per-minute ``limit`` (same window); the level keeps its distance from
        full."""
        self.refill(now_s)
        used = self.capacity - self.level
        window_s = self.capacity / self.rate_per_s
        self.rate_per_s = float(limit) / WINDOW_S
        self.capacity = self.rate_per_s * window_s
        self.level = self.capacity - used


class UpstreamBudget:
    """Requests-per-minute and tokens-per-minute buckets of one upstream (either may be None).

    ``clock`` returns monotonic seconds (injectable for tests). A provider's reset times are
    not used to block: they say when the window is *full* again, and the buckets' continuous
    refill already admits a request as soon as its cost has accrued.
    """

    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.window_s = window_s
        now = clock()
        self.requests = None if rpm is None else TokenBucket.per_minute(rpm, now, window_s)
        self.tokens = None if tpm is None else TokenBucket.per_minute(tpm, now, window_s)
        self.blocked_until_s = -math.inf
        """Nothing is admitted before this monotonic time (a 429's ``Retry-After``)."""
        self.taken_tokens = 0.0
        """Tokens charged so far, estimates corrected by real usage (for tokens/min used)."""
        self.reserved = Reserved()
        """The waiter the budget is held back for (backfilling may not delay it past due)."""

    def now_s(self) -> float:
        """The budget's monotonic clock, seconds."""
        return self._clock()

    def wait_s(self, cost_tokens: float, now_s: float | None = None) -> float:
        """Seconds until a request costing ``cost_tokens`` may be sent (0.0: now)."""
        now = self._clock() if now_s is None else now_s
        waits = [self.blocked_until_s - now, 0.0]
        if self.requests is not None:
            waits.append(self.requests.wait_s(1.0, now))
        if self.tokens is not None:
            waits.append(self.tokens.wait_s(cost_tokens, now))
        return max(waits)

    def try_take(self, cost_tokens: float) -> float:
        """Charge one request of ``cost_tokens`` if the budget allows now and return 0.0; else
        charge nothing and return the seconds to wait before asking again (> 0)."""
        now = self._clock()
        wait = self.wait_s(cost_tokens, now)
        if wait > 0.0:
            return wait
        if self.requests is not None:
            self.requests.level -= 1.0
        if self.tokens is not None:
            self.tokens.level -= cost_tokens
        self.taken_tokens += cost_tokens
        return 0.0

    def try_take_before(self, cost_tokens: float, reserved_tokens: float, due_s: float) -> bool:
        """Charge a request of ``cost_tokens`` now only if it fits now *and* a request of
        ``reserved_tokens`` still fits by ``due_s`` (monotonic seconds) afterwards; True if
        charged: what backfilling may take past a reservation (``budget_backfill``)."""
        now = self._clock()
        if self.wait_s(cost_tokens, now) > 0.0:
            return False
        self.try_take(cost_tokens)
        if now + self.wait_s(reserved_tokens, now) <= due_s:
            return True
        self.refund(cost_tokens)
        return False

    def admit(
        self, order: Iterable[tuple[int, float]], cost_of: Callable[[int], float | None]
    ) -> tuple[int | None, float]:
        """Charge and name the waiter to grant now among ``order`` ((seq, tokens), best
        first), or (None, seconds until it is worth asking again): the best waiter that does
        not fit holds a reservation, the others backfill within it
        (:func:`hermes_sdk.server.budget_backfill.admit`)."""
        return backfill_admit(self, self.reserved, order, cost_of)

    def refund(self, cost_tokens: float) -> None:
        """Give back a charge the provider did not count (it answered 429)."""
        if self.requests is not None:
            self.requests.level = min(self.requests.capacity, self.requests.level + 1.0)
        if self.tokens is not None:
            self.tokens.level = min(self.tokens.capacity, self.tokens.level + cost_tokens)
        self.taken_tokens -= cost_tokens

    def settle(self, estimated_tokens: float, actual_tokens: float) -> None:
        """Correct a charge with the tokens the response reported (a debt or a refund)."""
        delta = actual_tokens - estimated_tokens
        self.taken_tokens += delta
        if self.tokens is not None:
            self.tokens.refill(self._clock())
            self.tokens.level = min(self.tokens.capacity, self.tokens.level - delta)

    def observe(self, limits: ProviderLimits, sent_at_s: float | None = None) -> None:
        """Adapt to what the provider said: its limits, what remains, when it resets, and a 429's
        ``Retry-After``. A reported limit replaces the configured one; a reported remaining
        lowers the level (never raises it: requests in flight are charged here already). The
        provider counted ``remaining`` when the request arrived (``sent_at_s``, monotonic): what
        refilled since is added, or a long answer would report a stale, too-low level."""
        now = self._clock()
        since_s = 0.0 if sent_at_s is None else max(0.0, now - sent_at_s)
        for bucket_name, window in (("requests", limits.requests), ("tokens", limits.tokens)):
            bucket: TokenBucket | None = getattr(self, bucket_name)
            if window.limit is not None:
                if bucket is None:
                    bucket = TokenBucket.per_minute(window.limit, now, self.window_s)
                    setattr(self, bucket_name, bucket)
                elif window.limit != bucket.rate_per_s * WINDOW_S:
                    bucket.resize(window.limit, now)
            if bucket is None or window.remaining is None:
                continue
            bucket.refill(now)
            known = min(bucket.capacity, window.remaining + since_s * bucket.rate_per_s)
            bucket.level = min(bucket.level, known)
        if limits.retry_after_s is not None:
            self.blocked_until_s = max(self.blocked_until_s, now + limits.retry_after_s)

    def seconds_of(self, tokens: float, requests: int = 1) -> float:
        """Budget seconds of ``requests`` requests of ``tokens`` tokens in all: how long the
        limits in force take to refill them (the larger of tokens / (TPM / 60) and requests /
        (RPM / 60); 0.0 for a limit there is none of)."""
        tpm, rpm = self.tpm, self.rpm
        by_tokens = 0.0 if tpm is None else tokens / (tpm / WINDOW_S)
        by_requests = 0.0 if rpm is None else requests / (rpm / WINDOW_S)
        return max(by_tokens, by_requests)

    @property
    def rpm(self) -> float | None:
        """The requests-per-minute limit in force (configured or learned)."""
        return None if self.requests is None else self.requests.rate_per_s * WINDOW_S

    @property
    def tpm(self) -> float | None:
        """The tokens-per-minute limit in force (configured or learned)."""
        return None if self.tokens is None else self.tokens.rate_per_s * WINDOW_S
