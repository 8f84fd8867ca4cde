"""The heap walk behind the budget backfill: a heapq list in ascending order without popping it,
and the admission queue's backfill order (the next live waiters behind the best) equal to the
scan of every waiter it replaced, with reranked (stale and twice-pushed) heap entries."""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Hashable
from itertools import islice

from hypothesis import given
from hypothesis import strategies as st

from hermes_sdk.server.admission import AdmissionQueue, _order
from hermes_sdk.server.budget import UpstreamBudget
from hermes_sdk.server.budget_backfill import BACKFILL_SCAN
from hermes_sdk.server.heap_order import ascending
from tests.gateway.test_budget import FakeClock

ITEMS = st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 3)), max_size=60)


@given(ITEMS, st.integers(0, 70))
def test_ascending_is_sorted_and_leaves_the_heap_alone(
    items: list[tuple[int, int]], k: int
) -> None:
    heap = list(items)
    heapq.heapify(heap)
    before = list(heap)
    assert list(ascending(heap)) == sorted(items)
    assert list(islice(ascending(heap), k)) == heapq.nsmallest(k, items)
    assert heap == before


async def test_backfill_order_is_the_next_live_waiters_by_rank() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    ranks: dict[str, float] = {}

    def rank_of(key: Hashable | None, waited_s: float) -> float:
        return ranks[str(key)]

    q = AdmissionQueue("up", 10_000, 600.0, rank_of)
    q.budget = UpstreamBudget(rpm=None, tpm=60.0, window_s=1.0, clock=clock)  # 1 token/s
    await q.acquire(tenant="t", run_key="first", cost=1.0)  # empties the bucket: all wait
    keys = [f"r{i}" for i in range(300)]
    for key in keys:
        ranks[key] = float(rng.randint(0, 40))  # ties: broken by arrival
    waiting = [asyncio.create_task(q.acquire(tenant="t", run_key=k, cost=5.0)) for k in keys]
    await asyncio.sleep(0)
    for _ in range(3):  # reranks leave stale entries, and a rank back to its old value twice
        for key in rng.sample(keys, 120):
            ranks[key] = float(rng.choice([rng.randint(0, 40), ranks[key]]))
            q.rerank(key)
        for task in rng.sample(waiting, 10):
            task.cancel()  # gone waiters are skipped
        await asyncio.sleep(0)
        best = q._next_waiter()
        live = [w for w in q._waiters.values() if w is not best and not w.future.done()]
        want = [(best.seq, best.cost)] + [
            (w.seq, w.cost) for w in heapq.nsmallest(BACKFILL_SCAN - 1, live, key=_order)
        ]
        assert list(q._budget_order(best)) == want
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
