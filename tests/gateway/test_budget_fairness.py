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

import pytest

from hermes_sdk.policy.fairness import FairnessConfig, TenantShares
from hermes_sdk.server import ServerConfig
from hermes_sdk.server.admission import AdmissionQueue, Lease
from hermes_sdk.server.budget import UpstreamBudget
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import StartEngine, StartGateway
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
