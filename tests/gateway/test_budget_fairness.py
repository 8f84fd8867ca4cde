"""Fair shares across tenants on a budgeted upstream, as on slots.

A real server with the gateway and two tenants (fair sharing on by default with more than one),
one budgeted upstream with one slot; requests acquire through the scheduler (what the gateway's
handler does), so the tenants' shares are charged as for any backend.
"""

from __future__ import annotations

import asyncio

import pytest

from hermes_sdk.policy.fairness import FairnessConfig
from hermes_sdk.server import ServerConfig
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import StartEngine, StartGateway

KEYS = {"key-a": "acme", "key-b": "bravo"}


@pytest.mark.parametrize(("fair", "expected"), [(True, ["bravo", "acme", "acme"]), (False, None)])
async def test_the_tenant_behind_on_service_goes_first_on_a_budget(
    stack: tuple[StartEngine, StartGateway], fair: bool, expected: list[str] | None
) -> None:
    """acme holds the slot for 20 ms, then acme queues twice and bravo once (100 tokens each,
    equal budget ranks). With fair sharing bravo, behind on service, is granted first; the
    control (fairness off) grants in arrival order, acme's first."""
    engine, gateway = stack
    up = UpstreamConfig("hosted", await engine(), max_inflight=1, tpm=60_000)
    keys = ServerConfig().with_api_keys(KEYS).api_keys
    gw = await gateway(up, policy="gittins", api_keys=keys, fairness=FairnessConfig(enabled=fair))
    sched = gw.scheduler
    assert (sched.shares is not None) == fair
    queue = sched.queue("hosted")
    assert queue.budget is not None
    order: list[str] = []

    async def call(tenant: str) -> None:
        async with sched.slot("hosted", tenant=tenant, cost=100.0):
            order.append(tenant)
            await asyncio.sleep(0.01)

    held = sched.slot("hosted", tenant="acme", cost=100.0)
    await held.__aenter__()
    tasks = []
    for tenant in ("acme", "acme", "bravo"):
        tasks.append(asyncio.create_task(call(tenant)))
        await gw.wait_inflight("hosted", 1, depth=len(tasks))
    await asyncio.sleep(0.02)  # acme's held time is the service it is charged
    await held.__aexit__(None, None, None)
    await asyncio.gather(*tasks)
    assert order == (expected if expected is not None else ["acme", "acme", "bravo"])
