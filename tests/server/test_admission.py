"""AdmissionQueue: slots, (rank, arrival) order, reranking, cancellation, timeouts, reclaim."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Hashable

import pytest

from hermes_sdk.server.admission import AdmissionQueue, Lease, QueueTimeout


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _queue(ranks: dict[Hashable, float], max_inflight: int = 1, clock: Clock | None = None):
    return AdmissionQueue(
        "gpu",
        max_inflight,
        lease_s=10.0,
        rank_of=lambda key, waited_s: ranks.get(key, math.inf),
        clock=clock or Clock(),
    )


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_free_slots_are_granted_without_ranking() -> None:
    asked: list[Hashable | None] = []

    def rank(key: Hashable | None, waited_s: float) -> float:
        asked.append(key)
        return 1.0

    q = AdmissionQueue("gpu", 2, 10.0, rank)
    a = await q.acquire(tenant="t", run_key="a")
    b = await q.acquire(tenant="t", run_key="b")
    assert (q.inflight, q.depth, asked) == (2, 0, [])
    assert math.isnan(a.rank_s) and a.lease_id != b.lease_id


async def test_waiters_are_granted_by_rank_then_arrival() -> None:
    ranks: dict[Hashable, float] = {"slow": 9.0, "fast": 1.0, "mid1": 5.0, "mid2": 5.0}
    q = _queue(ranks)
    holder = await q.acquire(tenant="t")
    order: list[str] = []

    async def wait(key: str) -> Lease:
        lease = await q.acquire(tenant="t", run_key=key)
        order.append(key)
        return lease

    tasks = []
    for key in ("slow", "mid1", "fast", "unknown", "mid2"):
        tasks.append(asyncio.ensure_future(wait(key)))
        await _settle()
    assert [w[2] for w in q.waiting()] == ["fast", "mid1", "mid2", "slow", "unknown"]
    lease = holder
    for _ in tasks:
        assert q.release(lease.lease_id)
        await _settle()
        lease = next(t.result() for t in tasks if t.done() and t.result().run_key == order[-1])
    assert order == ["fast", "mid1", "mid2", "slow", "unknown"]


async def test_rerank_moves_a_waiter() -> None:
    ranks: dict[Hashable, float] = {"a": 1.0, "b": 2.0}
    q = _queue(ranks)
    holder = await q.acquire(tenant="t")
    ta = asyncio.ensure_future(q.acquire(tenant="t", run_key="a"))
    tb = asyncio.ensure_future(q.acquire(tenant="t", run_key="b"))
    await _settle()
    ranks["b"] = 0.5
    assert q.rerank("b") == 1 and q.rerank("zzz") == 0
    q.release(holder.lease_id)
    await _settle()
    assert tb.done() and not ta.done()
    q.release(tb.result().lease_id)
    await _settle()
    assert ta.done()


async def test_cancelled_waiter_leaves_the_queue() -> None:
    q = _queue({})
    holder = await q.acquire(tenant="t")
    task = asyncio.ensure_future(q.acquire(tenant="t", run_key="x"))
    await _settle()
    assert q.depth == 1
    task.cancel()
    await _settle()
    assert q.depth == 0
    q.release(holder.lease_id)
    assert q.inflight == 0


async def test_cancelled_in_the_grant_instant_releases_the_slot() -> None:
    q = _queue({})
    holder = await q.acquire(tenant="t")
    task = asyncio.ensure_future(q.acquire(tenant="t", run_key="x"))
    await _settle()
    q.release(holder.lease_id)  # grants to the waiter's future...
    task.cancel()  # ...which is cancelled before it resumes
    await _settle()
    assert task.cancelled()
    assert q.inflight == 0, "a grant nobody will use must go back"


async def test_timeout_raises_with_a_retry_hint() -> None:
    q = _queue({})
    await q.acquire(tenant="t")
    with pytest.raises(QueueTimeout) as err:
        await q.acquire(tenant="t", timeout_s=0.01)
    assert err.value.retry_after_s > 0 and q.depth == 0


async def test_expired_leases_are_reclaimed_and_regranted() -> None:
    clock = Clock()
    q = _queue({}, clock=clock)
    old = await q.acquire(tenant="t")
    waiter = asyncio.ensure_future(q.acquire(tenant="t", run_key="w"))
    await _settle()
    assert q.reclaim_expired() == 0
    clock.now += 10.0
    assert q.reclaim_expired() == 1
    await _settle()
    assert waiter.done() and q.inflight == 1 and q.reclaimed == 1
    assert not q.release(old.lease_id)


class Ledger:
    """An in-memory shared ledger standing in for other replicas."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.capacity_taken_elsewhere = 0

    def try_take(self, backend: str, lease_id: str, max_inflight: int, lease_s: float) -> bool:
        if len(self.held) + self.capacity_taken_elsewhere >= max_inflight:
            return False
        self.held.add(lease_id)
        return True

    def give_back(self, backend: str, member: str) -> bool:
        held = member in self.held
        self.held.discard(member)
        return held

    def extend(self, backend: str, member: str, lease_s: float) -> bool:
        return member in self.held

    def expiry(self, backend: str, member: str) -> float | None:
        return time.time() + 60 if member in self.held else None


async def test_a_shared_ledger_caps_grants_and_waiters_retry() -> None:
    ledger = Ledger()
    ledger.capacity_taken_elsewhere = 1  # another replica holds the only slot
    q = AdmissionQueue("gpu", 1, 10.0, lambda key, waited_s: 1.0, ledger=ledger)
    task = asyncio.ensure_future(q.acquire(tenant="t", run_key="x"))
    await asyncio.sleep(0.05)
    assert not task.done() and q.depth == 1 and q.inflight == 0
    ledger.capacity_taken_elsewhere = 0  # the other replica released
    lease = await asyncio.wait_for(task, 2.0)
    assert ledger.held == {f"t/{lease.lease_id}"}
    assert q.release(lease.lease_id) and ledger.held == set()
    # Released through another replica: reconcile frees the local slot for the next waiter.
    first = await q.acquire(tenant="t")
    waiter = asyncio.ensure_future(q.acquire(tenant="t", run_key="y"))
    await _settle()
    ledger.give_back("gpu", f"t/{first.lease_id}")
    assert q.reconcile() == 1
    await _settle()
    assert waiter.done() and q.inflight == 1


async def test_renew_extends_a_lease() -> None:
    clock = Clock()
    q = _queue({}, clock=clock)
    lease = await q.acquire(tenant="t")
    clock.now += 8.0
    renewed = q.renew(lease.lease_id)
    assert renewed is not None and renewed.expires_at_s == clock.now + 10.0
    clock.now += 8.0
    assert q.reclaim_expired() == 0
    clock.now += 3.0
    assert q.reclaim_expired() == 1
    assert q.renew(lease.lease_id) is None


async def test_many_waiters_reranked_many_times_are_granted_in_rank_order() -> None:
    """The indexed queue (per-run waiters, a heap with skipped entries) against a plain sort:
    after every rerank, abandon and grant, grants follow the current (rank, arrival) order."""
    import random

    rng = random.Random(5)
    ranks: dict[Hashable, float] = {f"r{i}": rng.random() for i in range(300)}
    q = _queue(ranks)
    holder = await q.acquire(tenant="t")
    tasks = {key: asyncio.ensure_future(q.acquire(tenant="t", run_key=key)) for key in ranks}
    await _settle()
    for _ in range(2000):  # re-rank runs, some back to an earlier value
        key = f"r{rng.randrange(300)}"
        ranks[key] = rng.choice([rng.random(), 0.5])
        q.rerank(key)
    for key in [f"r{i}" for i in range(0, 300, 7)]:  # some callers go away
        tasks.pop(key).cancel()
    await _settle()
    expected = [
        k for _, _, k in sorted((ranks[k], i, k) for i, k in enumerate(ranks) if k in tasks)
    ]
    assert [w[2] for w in q.waiting()] == expected
    granted = []
    lease = holder
    for _ in range(len(tasks)):
        assert q.release(lease.lease_id)
        await _settle()
        done = [k for k, t in tasks.items() if t.done() and k not in granted]
        assert len(done) == 1
        granted.append(done[0])
        lease = tasks[done[0]].result()
    assert granted == expected and q.depth == 0
