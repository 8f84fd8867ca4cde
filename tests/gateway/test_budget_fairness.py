"""Fair shares across tenants on a budgeted upstream: charged in the budget's tokens.

The first test runs a real server with the gateway and two tenants (fair sharing on by default
with more than one), one budgeted upstream with one slot; requests acquire through the scheduler
(what the gateway's handler does). A budgeted upstream charges each tenant the budget seconds of
the tokens it was granted (tokens / (TPM / 60)), not the seconds it held a slot. The second runs
the real AdmissionQueue, UpstreamBudget and TenantShares on a fake clock: the reservation's
backfill offers the picked tenant's waiters first.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Hashable
from functools import partial

import aiohttp
import pytest

from hermes_sdk.policy.fairness import FairnessConfig, TenantShares
from hermes_sdk.server import ServerConfig
from hermes_sdk.server.admission import AdmissionQueue, Lease
from hermes_sdk.server.budget import UpstreamBudget
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import StartEngine, StartGateway, engine_records
from tests.gateway.test_budget import FakeClock

KEYS = {"key-a": "acme", "key-b": "bravo"}
TPM = 60_000
"""1,000 tokens a second: a 1,000-token request is one budget second."""


@pytest.mark.parametrize(
    ("fair", "expected"), [(True, "abbbaa"), (False, "bbbaaa")], ids=["fair", "control"]
)
async def test_fair_shares_on_a_budget_charge_tokens_not_hold_time(
    stack: tuple[StartEngine, StartGateway], fair: bool, expected: str
) -> None:
    """acme holds the slot (1 token) while acme queues three 1,000-token requests that hold the
    slot 1 ms each, then bravo three 10-token ones that hold it 50 ms each. Charged in budget
    seconds, acme's first grant (1 s) puts bravo behind for all three of its requests (0.01 s
    each): a, b, b, b, a, a. Charged by hold time, as before this fix, acme's 1 ms holds left
    it behind bravo's 50 ms ones: b, a, a, a, b, b. The control (fairness off) is the stage
    rank alone: bravo's small stages first."""
    engine, gateway = stack
    up = UpstreamConfig("hosted", await engine(), max_inflight=1, tpm=TPM)
    keys = ServerConfig().with_api_keys(KEYS).api_keys
    gw = await gateway(up, policy="gittins", api_keys=keys, fairness=FairnessConfig(enabled=fair))
    sched = gw.scheduler
    assert (sched.shares is not None) == fair
    order: list[str] = []

    async def call(tenant: str, cost: float, hold_s: float) -> None:
        async with sched.slot("hosted", tenant=tenant, cost=cost):
            order.append(tenant[0])
            await asyncio.sleep(hold_s)

    held = sched.slot("hosted", tenant="acme", cost=1.0)
    await held.__aenter__()
    tasks = []
    for tenant, cost, hold_s in [("acme", 1000.0, 0.001)] * 3 + [("bravo", 10.0, 0.05)] * 3:
        tasks.append(asyncio.create_task(call(tenant, cost, hold_s)))
        await gw.wait_inflight("hosted", 1, depth=len(tasks))
    await asyncio.sleep(0.02)
    await held.__aexit__(None, None, None)
    await asyncio.gather(*tasks)
    assert "".join(order) == expected
    if sched.shares is not None:  # budget seconds of the tokens granted, nothing for holding
        served = sched.shares.service_s("hosted")
        assert served == pytest.approx({"acme": 3.001, "bravo": 0.03})


RATE = 1024.0
"""Tokens per second of the queue test's budget (1-s window: the bucket holds 1,024)."""


@pytest.mark.parametrize(("fair", "granted"), [(True, "acme-small"), (False, "bravo-small")])
async def test_backfill_offers_the_tenant_fair_sharing_picked_first(
    fair: bool, granted: str
) -> None:
    """The bucket is empty; acme (behind on service) waits with a 900-token request ranked best
    and a 100-token one ranked last, bravo with a 100-token one ranked between. Once 150 tokens
    have refilled, fair sharing picks acme, whose large request reserves the budget; the 100
    tokens it does not need by its due time go to acme's small request. Before this fix the
    backfill took the best-ranked waiter of any tenant (bravo's), as the control without fair
    sharing still does."""
    clock = FakeClock()
    shares = TenantShares()
    shares.charge("up", "bravo", 10.0)  # bravo is ahead: fair sharing picks acme
    pick = partial(shares.pick, "up") if fair else None
    q = AdmissionQueue(
        "up", 100, 600.0, lambda key, waited: math.inf, clock=clock, pick_tenant=pick
    )
    q.budget = UpstreamBudget(rpm=None, tpm=RATE * 60, window_s=1.0, clock=clock)
    ranks = {"drain": 0.0, "acme-large": 1.0, "bravo-small": 2.0, "acme-small": 3.0}

    def rank(key: Hashable | None, waited_s: float, cost: float) -> float:
        return ranks[str(key)]

    q.budget_rank = rank
    await q.acquire(tenant="acme", run_key="drain", cost=RATE)  # empties the bucket
    tasks: dict[str, asyncio.Task[Lease]] = {}
    for key, cost in (("acme-large", 900.0), ("bravo-small", 100.0), ("acme-small", 100.0)):
        tenant = key.split("-")[0]
        tasks[key] = asyncio.create_task(q.acquire(tenant=tenant, run_key=key, cost=cost))
        await asyncio.sleep(0)
    assert q.depth == 3  # nothing fits an empty bucket
    clock.t += 150 / RATE
    q._dispatch()
    await asyncio.sleep(0)
    assert [k for k, t in tasks.items() if t.done()] == [granted]
    assert q.depth == 2
    for t in tasks.values():
        t.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_a_request_refused_with_429_is_charged_to_its_tenant_once(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    """acme and bravo send the same request; the provider answers acme's first attempt 429
    (the gateway absorbs it: refunds the budget, queues it again, resends). Each tenant's fair
    share is charged one grant's budget seconds: the refused attempt's charge is taken back
    with the budget's (before, acme paid twice for the one answer it got)."""
    engine, gateway = stack
    url = await engine()
    up = UpstreamConfig("hosted", url, max_inflight=1, tpm=TPM)
    keys = ServerConfig().with_api_keys(KEYS).api_keys
    gw = await gateway(up, policy="gittins", api_keys=keys, fairness=FairnessConfig(enabled=True))
    limited = {"error": {"message": "Rate limit reached", "type": "tokens", "code": 429}}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    async with aiohttp.ClientSession() as s:
        fault = {"status": 429, "body": limited, "count": 1}
        async with s.post(url.removesuffix("/v1") + "/debug/faults", json=fault) as r:
            assert r.status == 200
        for key in ("key-a", "key-b"):
            headers = {"Authorization": f"Bearer {key}"}
            async with s.post(f"{gw.url}/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
    await gw.wait_inflight("hosted", 0)
    assert len(await engine_records(url)) == 2  # the engine answered each once
    registry = gw.scheduler.metrics.registry
    absorbed = {"upstream": "hosted", "outcome": "absorbed"}
    assert registry.get_sample_value("hermes_gateway_upstream_429_total", absorbed) == 1.0
    shares = gw.scheduler.shares
    assert shares is not None
    served = shares.service_s("hosted")
    assert served["acme"] > 0 and served["acme"] == pytest.approx(served["bravo"])
    assert shares.counter("hosted", "acme") == pytest.approx(served["acme"])  # refunded too
