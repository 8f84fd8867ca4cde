"""A request the provider refused (429) queues again at its rank among the budget's waiters.

The real AdmissionQueue, UpstreamBudget and StageRanker on one fake clock, driven through the
gateway's own steps on a 429 (gateway.py): the response's ``Retry-After`` blocks the budget
(:meth:`UpstreamBudget.observe`), the charge is refunded, the lease released, and the request
acquires again inside the ranker's ``queued`` block with the same cost.
"""

from __future__ import annotations

import asyncio

import pytest

from hermes_sdk.server.admission import Lease
from hermes_sdk.server.provider_limits import ProviderLimits
from tests.gateway.test_budget_stage_order import RATE, _grants, _request, _stage_queue


@pytest.mark.parametrize("ranked", [True, False])
async def test_a_request_retried_after_a_429_lands_between_better_and_worse(ranked: bool) -> None:
    """``retried`` (a 400-token stage) is granted and sent; meanwhile ``worse`` (900) and
    ``better`` (100) queue behind an empty bucket. The provider answers ``retried`` 429 with
    Retry-After 0.1 s. Re-queued, it ranks behind ``better`` and ahead of ``worse``, and once the
    block is over the three are granted in that order (better and retried at its end, worse
    once 900 tokens are in). The FCFS control (every rank equal) queues the retried request last.
    """
    q, ranker, clock = _stage_queue(window_s=60.0)
    if not ranked:
        q.budget_rank = None  # rank_of: inf for all, first come first served
    await _request(q, ranker, "first", RATE * 60)  # empties the bucket
    sent = asyncio.create_task(_request(q, ranker, "retried", 400))
    await asyncio.sleep(0)
    assert await _grants(q, clock, {"retried": sent}, 1000) == [("retried", 400)]
    tasks: dict[str, asyncio.Task[Lease]] = {}
    for name, cost in (("worse", 900), ("better", 100)):
        tasks[name] = asyncio.create_task(_request(q, ranker, name, cost))
        await asyncio.sleep(0)
    assert q.depth == 2
    # the 429, as the gateway handles it: Retry-After blocks the budget, refund, release, queue
    assert q.budget is not None
    q.budget.observe(ProviderLimits(retry_after_s=0.1))
    q.budget.refund(400)
    assert q.release(sent.result().lease_id)
    assert q.depth == 2  # blocked: nobody took the refunded tokens
    tasks["retried"] = asyncio.create_task(_request(q, ranker, "retried", 400))
    await asyncio.sleep(0)
    waiting = [str(key) for _, _, key in q.waiting()]
    assert waiting == (["better", "retried", "worse"] if ranked else ["worse", "better", "retried"])
    finished: list[str] = []  # in the order granted (a grant wakes its task next turn, FIFO)
    for name, task in tasks.items():
        task.add_done_callback(lambda _, name=name: finished.append(name))
    order = dict(await _grants(q, clock, tasks, 4000))
    await asyncio.sleep(0)
    assert sorted(finished) == ["better", "retried", "worse"]  # each granted once
    if ranked:  # 102.4 tokens refilled in the 0.1 s block + the 400 refunded at its end
        assert finished == ["better", "retried", "worse"]
        assert order["better"] == order["retried"] == 103  # the first whole token step after
        assert order["worse"] - order["retried"] == pytest.approx(900 - 2.4, abs=1)
    assert q.depth == 0 and q.inflight == 4
