"""The order of a rate-limited upstream's waiters: Gittins in budget seconds (``budget_rank="run"``;
the default stage rank: test_budget_stage_order.py), reservations.

Queue-level tests run the real AdmissionQueue and UpstreamBudget on a fake budget clock (the
queue is kicked after each step); the ranking tests use a real graph registry; the last test
runs a real gateway in front of the sim engine as a rate-limited provider.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Hashable

import aiohttp
import pytest

from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.server.admission import AdmissionQueue
from hermes_sdk.server.budget import UpstreamBudget
from hermes_sdk.server.budget_backfill import BACKFILL_SLACK, MIN_SLACK_S
from hermes_sdk.server.gateway_budget import (
    BUDGETS,
    DEFAULT_OUTPUT_TOKENS,
    output_tokens_estimate,
)
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine
from hermes_sdk.sim.provider import RateLimitConfig
from tests.gateway.support import FAST_ENGINE, StartGateway, engine_records
from tests.gateway.test_budget import FakeClock

RATE = 1024.0
"""Tokens per second of the queue tests' budgets (61,440 a minute: exact in binary)."""


def _queue(window_s: float) -> tuple[AdmissionQueue, UpstreamBudget, FakeClock, dict[str, float]]:
    clock = FakeClock()
    ranks: dict[str, float] = {}

    def rank_of(key: Hashable | None, waited_s: float) -> float:
        return ranks[str(key).split("#")[0]]

    q = AdmissionQueue("up", 10_000, 600.0, rank_of)
    budget = UpstreamBudget(rpm=None, tpm=RATE * 60, window_s=window_s, clock=clock)
    q.budget = budget
    return q, budget, clock, ranks


async def test_a_large_request_is_admitted_within_its_reservation() -> None:
    """The best-ranked request needs the whole (1 s) bucket; an endless stream of cheaper ones
    (ranked after it) backfill while it waits, yet it is granted by its due time,
    ``wait * (1 + BACKFILL_SLACK) + MIN_SLACK_S`` after it reserved (here 1 s of refill)."""
    q, budget, clock, ranks = _queue(window_s=1.0)  # capacity 1024 tokens
    ranks.update(big=1.0, small=5.0)
    await q.acquire(tenant="t", run_key="first", cost=RATE)  # empties the bucket
    start = clock.t
    big = asyncio.create_task(q.acquire(tenant="t", run_key="big", cost=RATE))
    await asyncio.sleep(0)
    smalls: list[asyncio.Task[object]] = []
    granted_small_before = 0
    big_at = math.nan
    for step in range(400):  # 64 tokens a step: a new small request every step
        clock.t += 64 / RATE
        smalls.append(asyncio.create_task(q.acquire(tenant="t", run_key=f"small#{step}", cost=64)))
        await asyncio.sleep(0)
        q._dispatch()
        await asyncio.sleep(0)
        if big.done():
            big_at = clock.t
            break
        granted_small_before = sum(t.done() for t in smalls)
    bound = 1.0 * (1 + BACKFILL_SLACK) + MIN_SLACK_S
    step = 64 / RATE  # the queue looks again at each step here (at the due time when live)
    assert big.done() and bound - step < big_at - start <= bound + step
    assert granted_small_before >= 10  # cheaper ones were not blocked behind it meanwhile
    for t in smalls:
        t.cancel()
    await asyncio.gather(*smalls, return_exceptions=True)
    assert budget.tokens is not None


async def test_a_later_better_ranked_waiter_goes_first_within_the_holder_slack() -> None:
    """Equal costs: ``late`` (rank 1) arrives after ``early`` (rank 2) reserved with the bucket
    empty; both fit by ``early``'s due time, so ``late`` goes first (Gittins order kept)."""
    q, _, clock, ranks = _queue(window_s=60.0)
    ranks.update(early=2.0, late=1.0)
    await q.acquire(tenant="t", run_key="first", cost=RATE * 60)
    start = clock.t
    early = asyncio.create_task(q.acquire(tenant="t", run_key="early", cost=256))
    await asyncio.sleep(0)
    late = asyncio.create_task(q.acquire(tenant="t", run_key="late", cost=256))
    await asyncio.sleep(0)
    order: list[tuple[str, int]] = []
    for _ in range(600):
        clock.t += 1 / RATE
        q._dispatch()
        await asyncio.sleep(0)
        for name, t in (("early", early), ("late", late)):
            if t.done() and name not in [n for n, _ in order]:
                order.append((name, round((clock.t - start) * RATE)))
    assert order == [("late", 256), ("early", 512)]


def _teach(registry: object, app: str, stages: int, runs: int = 12) -> None:
    """``app`` runs ``stages`` LLM stages named ``step`` of 200 prompt + 100 output tokens."""
    observe = registry.observe  # type: ignore[attr-defined]
    for i in range(runs):
        call = Call(service_s=0.5, input_tokens=200, output_tokens=100)
        path = tuple(
            Stage(node="step", calls=(call,), kind="llm", backend="hosted") for _ in range(stages)
        )
        observe(RunPath(app=app, stages=path, run_id=f"{app}-{i}"))


@pytest.fixture
async def provider() -> AsyncIterator[str]:
    """A sim engine limited like a hosted provider: 60,000 tokens/min (1,000/s)."""
    config = SimEngineConfig(model="m", **FAST_ENGINE)  # type: ignore[arg-type]
    async with serve_sim_engine(config, rate_limit=RateLimitConfig(tpm=60_000)) as url:
        yield url


async def test_budget_rank_is_gittins_on_remaining_tokens(
    provider: str, stack: tuple[object, StartGateway]
) -> None:
    """A run with one 300-token stage left ranks before one with six (same request cost);
    the rank is in budget seconds: (request + predicted rest) / (TPM / 60)."""
    _, gateway = stack
    up = UpstreamConfig("hosted", provider, tpm=60_000, budget_rank="run")
    gw = await gateway(up, policy="gittins_plain")
    _teach(gw.scheduler.registry, "short", 1)
    _teach(gw.scheduler.registry, "long", 6)
    ranker = gw.app[BUDGETS].rankers["hosted"]
    with (
        ranker.queued(("default", "s1"), "short", "step"),
        ranker.queued(("default", "l1"), "long", "step"),
    ):
        short = ranker.rank(("default", "s1"), 0.0, 300)
        long = ranker.rank(("default", "l1"), 0.0, 300)
        unknown = ranker.rank(("default", "nobody"), 0.0, 300)
    assert short == pytest.approx(300 / 1000)  # nothing after its stage
    assert long == pytest.approx(6 * 300 / 1000)  # five more stages of 300 tokens
    assert math.isinf(unknown)
    # a request's charge: max_tokens when set (the provider counts it), else the prediction
    estimate = output_tokens_estimate
    assert estimate(gw.scheduler, "default", "short", "step", {"max_tokens": 40}) == 40
    assert estimate(gw.scheduler, "default", "short", "step", {}) == 100
    assert estimate(gw.scheduler, "default", "other", "step", {}) == DEFAULT_OUTPUT_TOKENS


@pytest.mark.parametrize(("policy", "first"), [("gittins_plain", "short"), ("fcfs", "long")])
async def test_a_short_runs_request_goes_before_a_long_runs(
    provider: str, stack: tuple[object, StartGateway], policy: str, first: str
) -> None:
    """Through the gateway: the provider's budget is spent, the one slot is held; a long run's
    request arrives, then a short run's (same size). Under Gittins the short run's is sent to
    the provider first; FCFS (the control) sends the long run's first."""
    _, gateway = stack
    up = UpstreamConfig("hosted", provider, max_inflight=1, tpm=60_000, budget_rank="run")
    gw = await gateway(up, policy=policy)
    _teach(gw.scheduler.registry, "short", 1)
    _teach(gw.scheduler.registry, "long", 6)
    async with aiohttp.ClientSession() as s:
        drain = {"model": "m", "prompt": " ".join(["w"] * 59_000), "max_tokens": 5}
        async with s.post(gw.url + "/completions", json=drain) as r:
            assert r.status == 200
        queue = gw.scheduler.queue("hosted")
        held = await queue.acquire(tenant="default")

        async def call(app: str) -> int:
            headers = {"X-Hermes-App": app, "X-Hermes-Run": f"{app}-run", "X-Hermes-Unit": "step"}
            body = {"model": "m", "prompt": f"{app} " + "abcd " * 240, "max_tokens": 100}
            async with s.post(gw.url + "/completions", json=body, headers=headers) as r:
                return r.status

        long = asyncio.create_task(call("long"))
        await gw.wait_inflight("hosted", 1, depth=1)
        short = asyncio.create_task(call("short"))
        await gw.wait_inflight("hosted", 1, depth=2)
        gw.scheduler.release(held.lease_id)
        assert await asyncio.gather(long, short) == [200, 200]
    assert len(await engine_records(provider)) == 3
    served = [c.app for c in gw.gateway.calls]  # one slot: answered in the order granted
    assert served == [None, first, "long" if first == "short" else "short"]
