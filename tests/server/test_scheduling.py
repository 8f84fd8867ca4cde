"""Grant order on a real server: Gittins by learned demand, reordering after a stage, LSTF."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from hermes_sdk.graph.records import Call, RunPath, Stage, path_to_dict
from hermes_sdk.server import BackendConfig

from .conftest import Server, StartServer

GPU = {"gpu": BackendConfig(max_inflight=1)}


def _path(app: str, *stages: tuple[str, float]) -> dict[str, Any]:
    return path_to_dict(
        RunPath(app=app, stages=tuple(Stage(n, (Call(s),), "llm", "gpu") for n, s in stages))
    )


async def _post(http: aiohttp.ClientSession, url: str, body: object = None) -> Any:
    async with http.post(url, json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def _teach(http: aiohttp.ClientSession, server: Server, runs: int = 20) -> None:
    """Two apps: 'big_first' needs 10 s then 1 s; 'steady' needs 3 s in one stage."""
    events: list[dict[str, Any]] = []
    for i in range(runs):
        events.append(
            {"type": "run_end", "run_id": f"b{i}", "path": _path("big_first", ("a", 10), ("b", 1))}
        )
        events.append({"type": "run_end", "run_id": f"s{i}", "path": _path("steady", ("c", 3))})
    await _post(http, f"{server.url}/v1/events", {"events": events})


async def _wait_depth(http: aiohttp.ClientSession, server: Server, depth: int) -> None:
    for _ in range(500):
        async with http.get(f"{server.url}/v1/backends") as resp:
            (backend,) = (await resp.json())["backends"]
        if backend["waiting"] == depth:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"queue never reached depth {depth}")


async def _rank(http: aiohttp.ClientSession, server: Server, run_id: str) -> float:
    async with http.get(f"{server.url}/v1/runs/{run_id}/hints") as resp:
        rank = (await resp.json())["rank_s"]
    assert isinstance(rank, float)
    return rank


async def _contend(
    http: aiohttp.ClientSession,
    server: Server,
    first: str,
    second: str,
    between: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Hold the slot, queue ``first`` then ``second``, optionally send events, then release.

    Returns run ids in grant order.
    """
    holder = await _post(http, f"{server.url}/v1/backends/gpu/acquire")
    acquire = f"{server.url}/v1/backends/gpu/acquire"
    tasks = {}
    for depth, run_id in enumerate((first, second), start=1):
        tasks[run_id] = asyncio.ensure_future(_post(http, acquire, {"run_id": run_id}))
        await _wait_depth(http, server, depth)
    if between:
        await _post(http, f"{server.url}/v1/events", {"events": between})
    order: list[str] = []
    release_id = holder["lease_id"]
    while tasks:
        await _post(http, f"{server.url}/v1/leases/{release_id}/release")
        done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1, "max_inflight=1 must grant one request at a time"
        (run_id,) = [r for r, t in tasks.items() if t in done]
        release_id = tasks.pop(run_id).result()["lease_id"]
        order.append(run_id)
    await _post(http, f"{server.url}/v1/leases/{release_id}/release")
    return order


async def test_grants_follow_gittins_order(serve: StartServer, http: aiohttp.ClientSession) -> None:
    server = await serve(policy="gittins", backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "big_first", "run_id": "B"})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "S"})
    assert await _rank(http, server, "S") < await _rank(http, server, "B")
    # B asked first, but S's expected remaining work (3 s) is far below B's (11 s).
    assert await _contend(http, server, "B", "S") == ["S", "B"]


async def test_waiting_request_moves_when_its_run_finishes_a_stage(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(policy="gittins", backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "big_first", "run_id": "B"})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "S"})
    before = await _rank(http, server, "B")
    stage_a = [
        {"type": "unit_start", "run_id": "B", "unit_id": "u1", "node": "a", "kind": "llm"},
        {"type": "unit_end", "run_id": "B", "unit_id": "u1", "service_s": 10.0},
    ]
    # S queued first and would win on arrival order too; B's finished stage leaves it 1 s.
    order = await _contend(http, server, "S", "B", between=stage_a)
    after = await _rank(http, server, "B")
    assert after < await _rank(http, server, "S") < before
    assert order == ["B", "S"]


async def test_without_events_the_same_requests_keep_their_order(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(policy="gittins", backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "big_first", "run_id": "B"})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "S"})
    assert await _contend(http, server, "S", "B") == ["S", "B"]


@pytest.mark.parametrize(("policy", "expected"), [("lstf", ["T", "L"]), ("fcfs", ["L", "T"])])
async def test_lstf_lets_a_tight_deadline_overtake(
    serve: StartServer, http: aiohttp.ClientSession, policy: str, expected: list[str]
) -> None:
    server = await serve(policy=policy, backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "L", "deadline_s": 900})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "T", "deadline_s": 10})
    assert await _contend(http, server, "L", "T") == expected


async def test_unknown_runs_are_served_fcfs_after_ranked_ones(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(policy="gittins", backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "big_first", "run_id": "B"})
    order = await _contend(http, server, "nobody-1", "B")
    assert order == ["B", "nobody-1"]
    assert await _contend(http, server, "nobody-1", "nobody-2") == ["nobody-1", "nobody-2"]


async def test_client_sent_rank_is_ignored(serve: StartServer, http: aiohttp.ClientSession) -> None:
    server = await serve(policy="gittins", backends=GPU)
    await _teach(http, server)
    await _post(http, f"{server.url}/v1/runs", {"app": "big_first", "run_id": "B"})
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "S"})
    holder = await _post(http, f"{server.url}/v1/backends/gpu/acquire")
    url = f"{server.url}/v1/backends/gpu/acquire"
    b = asyncio.ensure_future(_post(http, url, {"run_id": "B", "rank_s": 0, "priority": -99}))
    await _wait_depth(http, server, 1)
    s = asyncio.ensure_future(_post(http, url, {"run_id": "S", "rank_s": 1e9}))
    await _wait_depth(http, server, 2)
    await _post(http, f"{server.url}/v1/leases/{holder['lease_id']}/release")
    done, _ = await asyncio.wait({b, s}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {s}
    await _post(http, f"{server.url}/v1/leases/{s.result()['lease_id']}/release")
    await _post(http, f"{server.url}/v1/leases/{(await b)['lease_id']}/release")


@pytest.mark.parametrize(
    ("policy", "expected"), [("fcfs", ["New", "Old"]), ("app_fcfs", ["Old", "New"])]
)
async def test_request_fcfs_versus_app_fcfs(
    serve: StartServer, http: aiohttp.ClientSession, policy: str, expected: list[str]
) -> None:
    server = await serve(policy=policy, backends=GPU)
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "Old"})
    await asyncio.sleep(0.01)
    await _post(http, f"{server.url}/v1/runs", {"app": "steady", "run_id": "New"})
    # New's request arrives first; Old's run arrived first. A state change re-ranks Old.
    touch = [{"type": "unit_start", "run_id": "Old", "unit_id": "u", "node": "c"}]
    assert await _contend(http, server, "New", "Old", between=touch) == expected
