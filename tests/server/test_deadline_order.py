"""Deadline policies queue by absolute urgency, whenever each waiter was ranked.

Slack (LSTF) and time-to-deadline (EDF) fall with the clock, so comparing a rank taken when one
request joined the queue with a rank taken seconds later for another would invert their order.
The scheduler compares the policies' time-invariant order keys instead.
"""

from __future__ import annotations

import asyncio

import pytest

from hermes_sdk.server.config import BackendConfig, ServerConfig
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.scheduler import Scheduler
from hermes_sdk.store import open_store


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.mark.parametrize("policy", ["lstf", "edf"])
async def test_earlier_absolute_deadline_is_admitted_first(policy: str) -> None:
    clock = Clock()
    config = ServerConfig(
        store_url="memory://", policy=policy, backends={"gpu": BackendConfig(max_inflight=1)}
    )
    sched = Scheduler(config, open_store("memory://"), ServerMetrics(), clock=clock)
    order: list[str] = []

    async def use(run_id: str, deadline_s: float) -> None:
        async with sched.slot("gpu", tenant="t", run_id=run_id, app="x", deadline_s=deadline_s):
            order.append(run_id)

    try:
        blocker = await sched.acquire("gpu", tenant="t", run_id="blocker", app="w")
        first = asyncio.create_task(use("a", 3.5))  # absolute deadline 1003.5
        await asyncio.sleep(0.05)
        clock.now_s += 2.0
        second = asyncio.create_task(use("b", 3.0))  # absolute deadline 1005.0: less urgent
        await asyncio.sleep(0.05)
        sched.release(blocker.lease_id)
        await asyncio.gather(first, second)
    finally:
        sched.close()
    assert order == ["a", "b"]
    assert sched.time_varying
