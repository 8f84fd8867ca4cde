"""Token-bucket budgets of hosted upstreams, exact on a fake clock, and admission under them."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from hermes_sdk.server.admission import AdmissionQueue
from hermes_sdk.server.budget import TokenBucket, UpstreamBudget
from hermes_sdk.server.provider_limits import LimitWindow, ProviderLimits


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_refills_at_limit_per_minute_exactly() -> None:
    b = TokenBucket.per_minute(600, now_s=0.0)  # 10 per second
    assert b.wait_s(600, 0.0) == 0.0
    b.level -= 600
    assert b.wait_s(10, 0.0) == pytest.approx(1.0)
    assert b.wait_s(10, 0.5) == pytest.approx(0.5)
    assert b.level == pytest.approx(5.0)
    b.refill(1000.0)
    assert b.level == 600  # never beyond capacity
    assert b.wait_s(5000, 1000.0) == 0.0  # a cost above the capacity goes once the bucket is full


def test_budget_charges_both_buckets_and_says_how_long_to_wait() -> None:
    clock = FakeClock()
    budget = UpstreamBudget(rpm=60, tpm=6000, clock=clock)  # 1 request/s, 100 tokens/s
    assert budget.try_take(5000) == 0.0
    assert budget.try_take(1000) == 0.0  # 59 requests and 0 tokens left
    assert budget.try_take(100) == pytest.approx(1.0)  # nothing charged when refused
    assert budget.tokens is not None and budget.tokens.level == pytest.approx(0.0)
    clock.t += 0.25
    assert budget.wait_s(100) == pytest.approx(0.75)
    clock.t += 0.75
    assert budget.try_take(100) == 0.0
    assert budget.requests is not None and budget.requests.level == pytest.approx(58.0)  # 57 + 1 s
    assert budget.taken_tokens == 6100


def test_settle_refund_and_requests_bucket() -> None:
    clock = FakeClock()
    budget = UpstreamBudget(rpm=2, tpm=None, clock=clock)  # 1 request per 30 s
    assert budget.try_take(10**9) == 0.0 and budget.try_take(1) == 0.0
    assert budget.try_take(1) == pytest.approx(30.0)
    budget.refund(1)
    assert budget.try_take(1) == 0.0
    tokens = UpstreamBudget(rpm=None, tpm=600, clock=clock)
    assert tokens.try_take(500) == 0.0
    tokens.settle(500, 650)  # the response used 150 more than estimated: a debt
    assert tokens.tokens is not None and tokens.tokens.level == pytest.approx(-50.0)
    assert tokens.wait_s(10) == pytest.approx(6.0)  # 60 tokens at 10/s
    tokens.settle(100, 40)  # and 60 fewer: a refund
    assert tokens.tokens.level == pytest.approx(10.0)


def test_observe_adapts_limits_remaining_and_retry_after() -> None:
    clock = FakeClock()
    budget = UpstreamBudget(rpm=None, tpm=6000, clock=clock)
    budget.observe(
        ProviderLimits(
            requests=LimitWindow(limit=120, remaining=3),
            tokens=LimitWindow(limit=12000, remaining=100, reset_s=59.0),
        )
    )
    assert budget.rpm == 120 and budget.tpm == 12000  # learned and replaced
    assert budget.requests is not None and budget.requests.level == 3
    assert budget.tokens is not None and budget.tokens.level == 100
    assert budget.wait_s(300) == pytest.approx(1.0)  # 200 tokens at 200/s
    budget.observe(ProviderLimits(tokens=LimitWindow(remaining=5000)))
    assert budget.tokens.level == 100  # a remaining never raises the level
    budget.observe(ProviderLimits(retry_after_s=7.0))
    assert budget.wait_s(1) == pytest.approx(7.0)
    clock.t += 7.0
    assert budget.wait_s(1) == 0.0


async def test_admission_waits_for_the_budget_in_policy_order() -> None:
    """Equal waiters are granted in rank order as the budget refills, each the moment its tokens
    have accrued; a cheaper, worse-ranked one backfills at once, since the tokens it takes would
    not have been used before the reservation's due time (fake budget clock stepped one token at
    a time; the queue is kicked after every step instead of waiting for its timer)."""
    clock = FakeClock()
    ranks = {"a": 2.0, "b": 3.0, "c": 1.0, "cheap": 4.0}

    def rank_of(key: Hashable | None, waited_s: float) -> float:
        return ranks[str(key)]

    q = AdmissionQueue("up", 100, 60.0, rank_of)
    budget = UpstreamBudget(rpm=None, tpm=61_440, clock=clock)  # 1024 tokens/s: exact binary
    q.budget = budget
    first = await q.acquire(tenant="t", run_key="first", cost=61_440)  # empties the bucket
    assert first.backend == "up" and budget.tokens is not None
    start = clock.t
    tasks = {
        k: asyncio.create_task(q.acquire(tenant="t", run_key=k, cost=c))
        for k, c in (("a", 64), ("b", 64), ("c", 64), ("cheap", 1))
    }
    await asyncio.sleep(0)
    granted: dict[str, float] = {}
    for _ in range(200):
        clock.t += 1 / 1024.0
        q._dispatch()
        await asyncio.sleep(0)
        granted.update({k: clock.t for k, t in tasks.items() if t.done() and k not in granted})
    assert list(granted) == ["cheap", "c", "a", "b"]
    tokens_at = {k: round((t - start) * 1024) for k, t in granted.items()}
    assert tokens_at == {"cheap": 1, "c": 65, "a": 129, "b": 193}
    assert q.inflight == 5 and q.depth == 0
    assert budget.taken_tokens == 61_440 + 3 * 64 + 1


def test_a_shorter_enforcement_window_caps_the_burst() -> None:
    clock = FakeClock()
    budget = UpstreamBudget(rpm=None, tpm=6000, window_s=1.0, clock=clock)  # 100/s, burst 100
    assert budget.tpm == 6000
    assert budget.try_take(100) == 0.0
    assert budget.try_take(50) == pytest.approx(0.5)
    clock.t += 60.0
    assert budget.tokens is not None and budget.wait_s(0) == 0.0
    budget.tokens.refill(clock.t)
    assert budget.tokens.level == 100  # never more than the window's share
    budget.observe(ProviderLimits(tokens=LimitWindow(limit=12000)))
    assert (budget.tpm, budget.tokens.capacity) == (12000, 200)


def test_a_remaining_counts_the_refill_since_the_request_was_sent() -> None:
    """The provider counted ``remaining`` on arrival; a 2 s answer must not report it as now."""
    clock = FakeClock()
    budget = UpstreamBudget(rpm=None, tpm=6000, clock=clock)  # 100/s
    sent = clock.t
    clock.t += 2.0
    budget.observe(ProviderLimits(tokens=LimitWindow(limit=6000, remaining=50)), sent_at_s=sent)
    assert budget.tokens is not None and budget.tokens.level == pytest.approx(250.0)
    budget.observe(ProviderLimits(tokens=LimitWindow(remaining=50)))  # no send time: as is
    assert budget.tokens.level == pytest.approx(50.0)
