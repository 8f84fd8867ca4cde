"""The global admission order's repair paths, two replicas' queues in one process on a real
redis-server: a lost grant message, a lapsed heartbeat, and Redis unreachable."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Hashable
from pathlib import Path

import pytest
import redis

from hermes_sdk.server.global_order import GlobalOrder
from hermes_sdk.server.global_queue import GlobalAdmissionQueue
from hermes_sdk.server.ledger import RedisSlotLedger

Replica = tuple[GlobalAdmissionQueue, GlobalOrder, RedisSlotLedger]


def _rank(key: Hashable | None, waited_s: float) -> float:
    return float(key) if isinstance(key, (int, float)) else math.inf


def _replica(url: str) -> Replica:
    order = GlobalOrder(url, heartbeat_s=3.0)
    ledger = RedisSlotLedger(url)
    return GlobalAdmissionQueue("gpu", 1, 30.0, _rank, order=order, ledger=ledger), order, ledger


@pytest.fixture
async def two(redis_url: str) -> AsyncIterator[tuple[Replica, Replica, redis.Redis]]:
    url = f"{redis_url.rsplit('/', 1)[0]}/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    a, b = _replica(url), _replica(url)
    yield a, b, client
    for _, order, ledger in (a, b):
        order.close()
        ledger.close()
    client.close()


async def _queued(q: GlobalAdmissionQueue, n: int) -> None:
    while q.depth < n:
        await asyncio.sleep(0.002)


async def test_a_grant_whose_message_was_lost_is_delivered_by_reconcile(
    two: tuple[Replica, Replica, redis.Redis],
) -> None:
    (qa, _, _), (qb, order_b, _), _ = two
    held = await qa.acquire(tenant="t")
    waiting = asyncio.create_task(qb.acquire(tenant="t", run_key=1.0))
    await _queued(qb, 1)
    order_b.unwatch(next(iter(order_b._sinks)))  # B misses the channel message
    assert qa.release(held.lease_id)
    await asyncio.sleep(0.05)
    assert not waiting.done() and order_b.grants_delivered == 0
    order_b.watch(next(iter(qb._members)), qb)
    qb.reconcile()  # housekeeping: the ledger holds B's waiter's slot, so it was granted
    lease = await asyncio.wait_for(waiting, 5)
    assert lease.backend == "gpu" and qb.inflight == 1
    assert qb.release(lease.lease_id)


async def test_a_waiter_dropped_for_a_lapsed_heartbeat_rejoins_at_its_place(
    two: tuple[Replica, Replica, redis.Redis],
) -> None:
    (qa, _, _), (qb, order_b, _), client = two
    held = await qa.acquire(tenant="t")
    b_first = asyncio.create_task(qb.acquire(tenant="t", run_key=1.0))
    await _queued(qb, 1)
    a_second = asyncio.create_task(qa.acquire(tenant="t", run_key=2.0))
    await _queued(qa, 1)
    client.delete(f"hermes:replica:{order_b.replica_id}")  # B looked dead (a long GC pause)
    assert qa.release(held.lease_id)  # B's waiter is dropped, A's second one is granted
    lease_a = await asyncio.wait_for(a_second, 5)
    assert not b_first.done()
    qb.reconcile()  # B beats again and puts its waiter back at its old place
    assert client.zcard("hermes:wait:gpu:t") == 1
    assert qa.release(lease_a.lease_id)
    lease_b = await asyncio.wait_for(b_first, 5)
    assert lease_b.lease_id != lease_a.lease_id and qb.release(lease_b.lease_id)
    assert client.zcard("hermes:slots:gpu") == 0


async def test_a_timed_out_waiter_leaves_the_order(
    two: tuple[Replica, Replica, redis.Redis],
) -> None:
    (qa, _, _), (qb, _, _), client = two
    held = await qa.acquire(tenant="t")
    with pytest.raises(Exception, match="no slot"):
        await qb.acquire(tenant="t", run_key=1.0, timeout_s=0.05)
    assert client.zcard("hermes:wait:gpu:t") == 0 and qb.depth == 0
    assert qa.release(held.lease_id)
    assert client.zcard("hermes:slots:gpu") == 0  # nothing was granted to the ghost


async def test_without_redis_the_queue_admits_on_local_capacity() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    order = GlobalOrder(url, heartbeat_s=3.0)
    ledger = RedisSlotLedger(url, timeout_s=0.2)
    q = GlobalAdmissionQueue("gpu", 1, 30.0, _rank, order=order, ledger=ledger)
    try:
        first = await asyncio.wait_for(q.acquire(tenant="t"), 5)
        second = asyncio.create_task(q.acquire(tenant="t", run_key=1.0))
        await _queued(q, 1)
        assert not second.done()
        assert q.release(first.lease_id)
        lease = await asyncio.wait_for(second, 5)
        assert q.inflight == 1 and q.release(lease.lease_id)
    finally:
        order.close()
        ledger.close()


async def test_a_rate_budgeted_queue_admits_in_local_order(
    two: tuple[Replica, Replica, redis.Redis],
) -> None:
    from hermes_sdk.server.budget import UpstreamBudget

    (qa, _, _), _, client = two
    qa.budget = UpstreamBudget(rpm=6000.0, tpm=None)
    first = await qa.acquire(tenant="t", cost=10.0)
    second = asyncio.create_task(qa.acquire(tenant="t", run_key=1.0, cost=10.0))
    while qa.depth < 1:
        await asyncio.sleep(0.002)
    assert client.zcard("hermes:wait:gpu:t") == 0  # waits here, not in the global order
    assert qa.release(first.lease_id)
    lease = await asyncio.wait_for(second, 5)
    assert qa.inflight == 1 and qa.release(lease.lease_id)
    assert client.zcard("hermes:slots:gpu") == 0


async def test_a_rerank_at_one_replica_moves_its_waiter_in_the_cluster_order(
    two: tuple[Replica, Replica, redis.Redis],
) -> None:
    (qa, _, _), (qb, _, _), _ = two
    ranks = {"x": 5.0, "y": 10.0}
    qa._rank_of = qb._rank_of = lambda key, waited_s: ranks[str(key)]
    held = await qa.acquire(tenant="t")
    order: list[str] = []

    async def wait(q: GlobalAdmissionQueue, key: str) -> None:
        lease = await q.acquire(tenant="t", run_key=key)
        order.append(key)
        q.release(lease.lease_id)

    tasks = [asyncio.create_task(wait(qa, "x"))]
    await _queued(qa, 1)
    tasks.append(asyncio.create_task(wait(qb, "y")))
    await _queued(qb, 1)
    ranks["y"] = 1.0  # y's run moved on (an event at B): now the better waiter
    assert qb.rerank("y") == 1 and qa.rerank("y") == 0
    assert qa.release(held.lease_id)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["y", "x"]


async def test_waiters_rejoin_after_redis_comes_back_empty(
    two: tuple[Replica, Replica, redis.Redis],
) -> None:
    (qa, _, _), (qb, _, _), client = two
    await qa.acquire(tenant="t")
    waiting = asyncio.create_task(qb.acquire(tenant="t", run_key=1.0))
    await _queued(qb, 1)
    client.flushdb()  # a restart without persistence: order and ledger are gone (as the ledger
    qb.reconcile()  # always was): B's waiter rejoins and takes the slot the ledger no longer has
    lease = await asyncio.wait_for(waiting, 5)
    assert client.zscore("hermes:slots:gpu", f"t/{lease.lease_id}") is not None
    assert qb.release(lease.lease_id)


def test_global_order_is_a_server_option(tmp_path: Path) -> None:
    from hermes_sdk.errors import ConfigError
    from hermes_sdk.server.config import ServerConfig, load_config

    assert ServerConfig().global_order is True
    path = tmp_path / "hermes.toml"
    path.write_text("[server]\nglobal_order = false\n")
    assert load_config(path).global_order is False
    path.write_text('[server]\nglobal_order = "no"\n')
    with pytest.raises(ConfigError, match="global_order"):
        load_config(path)
