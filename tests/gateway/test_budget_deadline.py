"""Deadlines on a budgeted upstream get the treatment they get on slots.

A real server with the gateway (deadline Gittins, the default ``gittins``), runs opened through
POST /v1/runs with and without deadlines, a graph taught with real run paths; the budget's own
ranker (stage or run rank) is compared with the scheduler's slot rank of the same runs.
"""

from __future__ import annotations

import aiohttp
import pytest

from hermes_sdk.policy.deadline_gittins import HOPELESS_RANK_S
from hermes_sdk.server.gateway_budget import BUDGETS
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import Gw, StartEngine, StartGateway
from tests.gateway.test_budget_order import _teach

COST = 300.0
"""Tokens of each waiting request (200 prompt + 100 output, as taught)."""


async def _open(gw: Gw, runs: dict[str, float | None]) -> None:
    async with aiohttp.ClientSession() as s:
        for run_id, deadline_s in runs.items():
            body: dict[str, object] = {"app": "steady", "run_id": run_id}
            if deadline_s is not None:
                body["deadline_s"] = deadline_s
            async with s.post(gw.url + "/runs", json=body) as r:
                assert r.status < 300, await r.text()


@pytest.mark.parametrize("budget_rank", ["stage", "run"])
async def test_deadline_runs_rank_on_a_budget_as_on_slots(
    stack: tuple[StartEngine, StartGateway], budget_rank: str
) -> None:
    """'steady' runs three 300-token stages of 0.5 s. S has no deadline, T 30 s (it makes it:
    ranks ahead, by the policy's weight), H 1 s (hopeless: behind every run that can make it).
    On the budget, T's rank over S's is the slots' ratio and H is ``HOPELESS_RANK_S`` + S's
    budget rank; S keeps the rank it has without any deadline in the queue."""
    engine, gateway = stack
    up = UpstreamConfig("hosted", await engine(), tpm=60_000, budget_rank=budget_rank)
    gw = await gateway(up, policy="gittins")
    _teach(gw.scheduler.registry, "steady", 3)
    await _open(gw, {"S": None, "T": 30.0, "H": 1.0})
    slot = {r: gw.scheduler.rank_of("default", r) for r in ("S", "T", "H")}
    ranker = gw.app[BUDGETS].rankers["hosted"]
    keys = {r: ("default", r) for r in slot}
    with (
        ranker.queued(keys["S"], "steady", "step", COST),
        ranker.queued(keys["T"], "steady", "step", COST),
        ranker.queued(keys["H"], "steady", "step", COST),
    ):
        budget = {r: ranker.rank(keys[r], 0.0, COST) for r in slot}
    free, feasible, hopeless = (slot[r] for r in ("S", "T", "H"))
    assert free is not None and feasible is not None and hopeless is not None
    assert feasible < free < HOPELESS_RANK_S <= hopeless  # on slots
    assert budget["T"] < budget["S"] < HOPELESS_RANK_S <= budget["H"]  # the same on the budget
    assert budget["T"] / budget["S"] == pytest.approx(feasible / free, rel=1e-6)
    assert budget["H"] - HOPELESS_RANK_S == pytest.approx(budget["S"], rel=1e-6)
    if budget_rank == "stage":  # S: its stage's budget seconds, untouched
        assert budget["S"] == pytest.approx(COST / 1000)


@pytest.mark.parametrize("policy", ["lstf", "edf"])
async def test_lstf_and_edf_order_a_budget_by_their_slot_rank(
    stack: tuple[StartEngine, StartGateway], policy: str
) -> None:
    """LSTF and EDF have no budget ranker: a budgeted upstream's waiters are ranked by the
    scheduler's slot key (the run with the deadline first, as on slots)."""
    engine, gateway = stack
    up = UpstreamConfig("hosted", await engine(), tpm=60_000)
    gw = await gateway(up, policy=policy)
    _teach(gw.scheduler.registry, "steady", 3)
    await _open(gw, {"S": None, "T": 30.0})
    assert "hosted" not in gw.app[BUDGETS].rankers
    queue = gw.scheduler.queue("hosted")
    assert queue.budget is not None and queue.budget_rank is None
    assert queue._safe_rank(("default", "T"), 0.0, COST) < queue._safe_rank(
        ("default", "S"), 0.0, COST
    )
