"""The c-mu order of a budgeted upstream's waiters: the run's waiting stage, fewest tokens first.

Queue-level tests run the real AdmissionQueue, UpstreamBudget and StageRanker on one fake clock
(the queue is kicked after each step); the last test runs a real gateway in front of the sim
engine as a rate-limited provider, through the default ``budget_rank="stage"``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hermes_sdk.errors import ConfigError
from hermes_sdk.policy.aging import AgingPolicy
from hermes_sdk.policy.baselines import FCFSPolicy
from hermes_sdk.server.admission import AdmissionQueue, Lease
from hermes_sdk.server.budget import UpstreamBudget
from hermes_sdk.server.budget_backfill import BACKFILL_SLACK, MIN_SLACK_S
from hermes_sdk.server.budget_stage_rank import StageRanker
from hermes_sdk.server.gateway_budget import BUDGETS
from hermes_sdk.server.upstreams import UpstreamConfig, parse_upstream_flag
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine
from hermes_sdk.sim.provider import RateLimitConfig
from tests.gateway.support import FAST_ENGINE, StartGateway
from tests.gateway.test_budget import FakeClock

RATE = 1024.0
"""Tokens per second of the queue tests' budgets (61,440 a minute: exact in binary)."""


def _stage_queue(
    window_s: float, aging: AgingPolicy | None = None, *, rpm: float | None = None
) -> tuple[AdmissionQueue, StageRanker, FakeClock]:
    clock = FakeClock()
    q = AdmissionQueue("up", 10_000, 600.0, lambda key, waited: math.inf, clock=clock)
    budget = UpstreamBudget(rpm=rpm, tpm=RATE * 60, window_s=window_s, clock=clock)
    q.budget = budget
    ranker = StageRanker(budget, aging, q.rerank, clock)
    q.budget_rank = ranker.rank
    return q, ranker, clock


async def _request(q: AdmissionQueue, ranker: StageRanker, run: str, cost: float) -> Lease:
    with ranker.queued(run, None, "step", cost):  # as the gateway does around its acquire
        return await q.acquire(tenant="t", run_key=run, cost=cost)


async def _grants(
    q: AdmissionQueue, clock: FakeClock, tasks: dict[str, asyncio.Task[Lease]], steps: int
) -> list[tuple[str, int]]:
    """Step the clock one token of refill at a time; (name, tokens refilled) per grant."""
    start = clock.t
    order: list[tuple[str, int]] = []
    for _ in range(steps):
        for name, t in tasks.items():
            if t.done() and name not in [n for n, _ in order]:
                order.append((name, round((clock.t - start) * RATE)))
        if len(order) == len(tasks):
            break
        clock.t += 1 / RATE
        q._dispatch()
        await asyncio.sleep(0)
    return order


@pytest.mark.parametrize("staged", [True, False])
async def test_a_short_stage_goes_before_a_long_stage_that_came_first(staged: bool) -> None:
    """The bucket holds 700 tokens: a run's 800-token request waits (it reserves: 100 tokens
    to go), then another run's 300-token one arrives. The stage rank grants the short stage at
    once and the long one 400 tokens later (waits 0 + 400). FCFS (the control: every rank
    equal) keeps the long one's reservation, which the short one cannot backfill within (it
    would delay it past its due time): long at 100, short at 400 (waits 100 + 400)."""
    q, ranker, clock = _stage_queue(window_s=60.0)
    if not staged:
        q.budget_rank = None  # rank_of: inf for all, first come first served
    await _request(q, ranker, "first", RATE * 60)  # empties the bucket
    clock.t += 700 / RATE
    tasks = {"long": asyncio.create_task(_request(q, ranker, "long", 800))}
    await asyncio.sleep(0)
    tasks["short"] = asyncio.create_task(_request(q, ranker, "short", 300))
    await asyncio.sleep(0)
    order = await _grants(q, clock, tasks, 2000)
    assert order == ([("short", 0), ("long", 400)] if staged else [("long", 100), ("short", 400)])


@pytest.mark.parametrize("one_run", [True, False])
async def test_a_fan_outs_stage_is_the_sum_of_its_waiting_siblings(one_run: bool) -> None:
    """A map-reduce run waits with five 200-token calls (a 1,000-token stage), another run with
    one 600-token call: the single call ranks first, although each sibling is smaller, because
    the fan-out's run moves on only when all five are served; every sibling carries the whole
    stage's rank and is re-ranked as its siblings arrive and leave. The control gives each
    sibling a run of its own: then each is a 200-token stage and ranks first."""
    q, ranker, clock = _stage_queue(window_s=60.0)
    await _request(q, ranker, "first", RATE * 60)
    tasks: dict[str, asyncio.Task[Lease]] = {}
    for i in range(5):
        run = "mapreduce" if one_run else f"mapreduce#{i}"
        tasks[f"map{i}"] = asyncio.create_task(_request(q, ranker, run, 200))
        await asyncio.sleep(0)
    tasks["single"] = asyncio.create_task(_request(q, ranker, "single", 600))
    await asyncio.sleep(0)
    ranks = {str(key): rank for rank, _, key in q.waiting()}
    assert ranks["single"] == 600 / RATE
    siblings = {rank for key, rank in ranks.items() if key.startswith("mapreduce")}
    assert siblings == ({1000 / RATE} if one_run else {200 / RATE})
    assert str(q.waiting()[0][2]) == ("single" if one_run else "mapreduce#0")
    if one_run:  # once a sibling is served the stage has 800 tokens left: the others move up
        order = await _grants(q, clock, {"map0": tasks["map0"]}, 2000)
        await asyncio.sleep(0)  # its request leaves the ranker's stage (the gateway's block)
        assert order and {r for r, _, key in q.waiting() if key == "mapreduce"} == {800 / RATE}
    order = await _grants(q, clock, tasks, 4000)
    assert len(order) == 6  # every request granted once
    assert ranker.stage_s("mapreduce", 0.0) == 0.0  # nothing left pending


async def test_a_stage_is_sized_by_its_requests_under_a_requests_budget() -> None:
    """With an RPM budget too, a stage occupies the larger of its token and request seconds."""
    q, ranker, _ = _stage_queue(window_s=60.0, rpm=60.0)  # one request a second
    with ranker.queued("r", None, "s", 10.0), ranker.queued("r", None, "s", 10.0):
        assert ranker.stage_s("r", 10.0) == pytest.approx(2.0)  # 2 requests, 20 tokens
    assert ranker.stage_s(None, 2048.0) == pytest.approx(2.0)  # no run: the request alone
    assert q.depth == 0


@pytest.mark.parametrize("aged", [True, False])
async def test_no_starvation_a_long_stage_waits_at_most_its_bound(aged: bool) -> None:
    """A 1,024-token stage (1 s of budget) waits while 64-token stages arrive without end at the
    refill rate. Under aging (slowdown_cap 2, no boost cap) no request arriving more than
    ``2 x (1 - 1/16)`` s after it ranks before it, and once best its reservation bounds the rest:
    it is granted within ``2 x 1 s + 1 s x (1 + BACKFILL_SLACK) + MIN_SLACK_S`` of arriving.
    Without aging (the control) the stream of smaller stages keeps it waiting past 10 s."""
    aging = AgingPolicy(FCFSPolicy(), slowdown_cap=2.0, max_boost_s=None) if aged else None
    q, ranker, clock = _stage_queue(window_s=1.0, aging=aging)  # capacity 1024 tokens
    await _request(q, ranker, "first", RATE)
    start = clock.t
    big = asyncio.create_task(_request(q, ranker, "big", RATE))
    await asyncio.sleep(0)
    smalls: list[asyncio.Task[Lease]] = []
    big_at = math.nan
    step = 64 / RATE
    for i in range(int(12.0 / step)):
        clock.t += step
        smalls.append(asyncio.create_task(_request(q, ranker, f"small{i}", 64)))
        await asyncio.sleep(0)
        q._dispatch()
        await asyncio.sleep(0)
        if big.done():
            big_at = clock.t - start
            break
    granted_small = sum(t.done() for t in smalls)
    for t in [*smalls, big]:
        t.cancel()
    await asyncio.gather(*smalls, big, return_exceptions=True)
    bound = 2.0 * 1.0 + 1.0 * (1 + BACKFILL_SLACK) + MIN_SLACK_S
    if aged:
        assert big_at <= bound + step
        assert granted_small >= 20  # the smaller stages went first meanwhile
    else:
        assert math.isnan(big_at)  # starved for the whole 12 s


def test_budget_rank_is_an_upstream_option() -> None:
    assert parse_upstream_flag("h=http://x,tpm=100,budget_rank=run").budget_rank == "run"
    assert UpstreamConfig("h", "http://x", tpm=100).budget_rank == "stage"
    with pytest.raises(ConfigError, match="budget_rank"):
        parse_upstream_flag("h=http://x,tpm=100,budget_rank=gittins")


@pytest.fixture
async def provider() -> AsyncIterator[str]:
    """A sim engine limited like a hosted provider: 60,000 tokens/min (1,000/s)."""
    config = SimEngineConfig(model="m", **FAST_ENGINE)  # type: ignore[arg-type]
    async with serve_sim_engine(config, rate_limit=RateLimitConfig(tpm=60_000)) as url:
        yield url


@pytest.mark.parametrize(("policy", "first"), [("gittins", "short"), ("fcfs", "long")])
async def test_through_the_gateway_the_smaller_waiting_stage_is_sent_first(
    provider: str, stack: tuple[object, StartGateway], policy: str, first: str
) -> None:
    """The one slot is held; a run's 900-token request arrives, then another run's 300-token
    one (both fit the budget: no reservation, no backfill; no graph learned: the charge is all
    the rank needs).
    Under Gittins (stage rank, the default) the short stage reaches the provider first; FCFS
    (the control) sends them in arrival order."""
    _, gateway = stack
    up = UpstreamConfig("hosted", provider, max_inflight=1, tpm=60_000)
    gw = await gateway(up, policy=policy)
    if policy == "gittins":
        assert isinstance(gw.app[BUDGETS].rankers["hosted"], StageRanker)
    async with aiohttp.ClientSession() as s:
        queue = gw.scheduler.queue("hosted")
        held = await queue.acquire(tenant="default")

        async def call(app: str, max_tokens: int) -> int:
            headers = {"X-Hermes-App": app, "X-Hermes-Run": f"{app}-run", "X-Hermes-Unit": "u"}
            body = {"model": "m", "prompt": "abcd " * 200, "max_tokens": max_tokens}
            async with s.post(gw.url + "/completions", json=body, headers=headers) as r:
                return r.status

        long = asyncio.create_task(call("long", 700))
        await gw.wait_inflight("hosted", 1, depth=1)
        short = asyncio.create_task(call("short", 100))
        await gw.wait_inflight("hosted", 1, depth=2)
        ranks = sorted(rank for rank, _, _ in queue.waiting())
        gw.scheduler.release(held.lease_id)
        assert await asyncio.gather(long, short) == [200, 200]
    if policy == "gittins":  # aging adds the same arrival term to both (arrived together)
        assert ranks[1] - ranks[0] == pytest.approx(600 / 1000, abs=0.05)
    served = [c.app for c in gw.gateway.calls]  # one slot: answered in the order granted
    assert served == [first, "long" if first == "short" else "short"]
