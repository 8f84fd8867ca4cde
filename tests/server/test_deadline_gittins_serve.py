"""`hermes serve --policy gittins` ranks runs with deadlines by the deadline Gittins index."""

from __future__ import annotations

import aiohttp
import pytest

from hermes_sdk.policy.deadline_gittins import HOPELESS_RANK_S

from .conftest import StartServer
from .test_scheduling import GPU, _contend, _post, _rank, _teach


@pytest.mark.parametrize(
    ("policy", "expected"), [("gittins", ["B", "H"]), ("lstf", ["H", "B"]), ("edf", ["H", "B"])]
)
async def test_hopeless_deadline_run_waits_behind_a_run_without_one_under_gittins(
    serve: StartServer, http: aiohttp.ClientSession, policy: str, expected: list[str]
) -> None:
    """H ('steady', 3 s of work) has 1 s left: it cannot make it, so Gittins serves B (no
    deadline, 11 s) first; LSTF and EDF, chosen explicitly, still put every deadline first."""
    server = await serve(policy=policy, backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "big_first", "run_id": "B"})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "H", "deadline_s": 1})
    assert await _contend(http, server, "H", "B") == expected


async def test_feasible_deadline_run_ranks_ahead_and_hopeless_one_behind(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(policy="gittins", backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "S"})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "T", "deadline_s": 30})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "H", "deadline_s": 1})
    free, feasible, hopeless = [await _rank(http, server, r) for r in ("S", "T", "H")]
    assert feasible < free < HOPELESS_RANK_S <= hopeless
