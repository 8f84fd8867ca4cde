"""Two scheduler replicas on one Redis share runs and graphs."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis
from server.conftest import Server, start_server

from hermes_sdk.server import BackendConfig, ServerConfig

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
_db = itertools.count(0)


def _fresh_db(redis_url: str) -> str:
    """A flushed db (1-15; db 0 is the store suite's) on the shared session redis-server."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{1 + next(_db) % 15}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[Server, Server]]:
    url = _fresh_db(redis_url)
    config = ServerConfig(
        port=0, store_url=url, backends={"gpu": BackendConfig(1)}, sync_interval_s=0.05
    )
    a = await start_server(config)
    b = await start_server(config)
    yield a, b
    await a.runner.cleanup()
    await b.runner.cleanup()


async def _json(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as resp:
        return resp.status, await resp.json()


def _path(app: str, service_s: float) -> dict[str, Any]:
    return {
        "app": app,
        "stages": [
            {"node": "plan", "kind": "llm", "calls": [{"service_s": service_s}]},
            {"node": "answer", "kind": "llm", "calls": [{"service_s": 1.0}]},
        ],
    }


async def test_run_started_on_one_replica_and_ended_on_the_other(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    async with aiohttp.ClientSession() as http:
        status, _ = await _json(http, "POST", f"{a.url}/v1/runs", {"app": "qa", "run_id": "r1"})
        assert status == 201
        await _json(
            http,
            "POST",
            f"{a.url}/v1/events",
            {
                "events": [
                    {"type": "unit_start", "run_id": "r1", "unit_id": "1", "node": "plan"},
                    {"type": "unit_end", "run_id": "r1", "unit_id": "1", "service_s": 2.0},
                ]
            },
        )
        # B sees the run's state as A left it, and continues it.
        status, run = await _json(http, "GET", f"{b.url}/v1/runs/r1")
        assert status == 200 and run["node"] == "plan" and run["attained_s"] == 2.0
        status, data = await _json(
            http,
            "POST",
            f"{b.url}/v1/events",
            {
                "events": [
                    {"type": "unit_start", "run_id": "r1", "unit_id": "2", "node": "answer"},
                    {"type": "unit_end", "run_id": "r1", "unit_id": "2", "service_s": 1.0},
                ]
            },
        )
        assert data == {"accepted": 2, "rejected": 0}
        status, run = await _json(http, "GET", f"{a.url}/v1/runs/r1")
        assert run["visits"] == {"plan": 1, "answer": 1} and run["attained_s"] == 3.0
        status, _ = await _json(http, "POST", f"{b.url}/v1/runs/r1/end", {"path": _path("qa", 2.0)})
        assert status == 200
        # The run is gone on both; the graph it taught is the same on both.
        for server in (a, b):
            status, _ = await _json(http, "GET", f"{server.url}/v1/runs/r1")
            assert status == 404
        _, graph_a = await _json(http, "GET", f"{a.url}/v1/apps/qa/graph")
        _, graph_b = await _json(http, "GET", f"{b.url}/v1/apps/qa/graph")
        assert graph_a["runs"] == 1 and graph_a == graph_b


async def test_paths_from_both_replicas_reach_both_graphs(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    async with aiohttp.ClientSession() as http:
        for i in range(6):
            server = (a, b)[i % 2]
            await _json(
                http,
                "POST",
                f"{server.url}/v1/events",
                {"events": [{"type": "run_end", "run_id": f"r{i}", "path": _path("qa", 1.0 + i)}]},
            )
        _, graph_a = await _json(http, "GET", f"{a.url}/v1/apps/qa/graph")
        _, graph_b = await _json(http, "GET", f"{b.url}/v1/apps/qa/graph")
        assert graph_a["runs"] == graph_b["runs"] == 6
        _, apps = await _json(http, "GET", f"{b.url}/v1/apps")
        assert apps == {"apps": [{"app": "qa", "runs": 6}]}


def test_redis_batch_append_and_cursor(redis_url: str) -> None:
    from hermes_sdk.graph.records import Call, RunPath, Stage
    from hermes_sdk.store import open_store
    from hermes_sdk.store.redis import RedisStore

    store = open_store(_fresh_db(redis_url))
    assert isinstance(store, RedisStore)
    paths = [
        RunPath(app="qa", run_id=f"r{i}", stages=(Stage("plan", (Call(1.0 + i),)),))
        for i in range(3)
    ]
    store.append_paths(paths[:2])
    store.append_raw("{corrupt")
    store.append_paths([])
    cursor, seen = store.paths_since(0)
    assert (cursor, [p.run_id for p in seen]) == (3, ["r0", "r1"])
    assert store.corrupt_rows == 1
    store.append_paths(paths[2:])
    cursor, seen = store.paths_since(cursor)
    assert (cursor, [p.run_id for p in seen]) == (4, ["r2"])
    assert store.paths_since(cursor) == (4, [])
    store.close()


async def test_replicas_share_a_backends_slots(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    async with aiohttp.ClientSession() as http:
        status, lease_a = await _json(http, "POST", f"{a.url}/v1/backends/gpu/acquire", {})
        assert status == 200
        # max_inflight=1 across both replicas: B has a free local slot, but the shared one is taken.
        status, err = await _json(
            http, "POST", f"{b.url}/v1/backends/gpu/acquire", {"timeout_s": 0.2}
        )
        assert status == 429 and err["error"]["code"] == "queue_timeout"
        waiting = asyncio.ensure_future(
            _json(http, "POST", f"{b.url}/v1/backends/gpu/acquire", {"timeout_s": 10})
        )
        await asyncio.sleep(0.1)
        assert not waiting.done()
        status, _ = await _json(http, "POST", f"{a.url}/v1/leases/{lease_a['lease_id']}/release")
        assert status == 200
        status, lease_b = await waiting
        assert status == 200
        status, _ = await _json(http, "POST", f"{b.url}/v1/leases/{lease_b['lease_id']}/release")
        assert status == 200


async def test_a_lease_can_be_renewed_and_released_through_either_replica(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    async with aiohttp.ClientSession() as http:
        status, lease = await _json(http, "POST", f"{a.url}/v1/backends/gpu/acquire", {})
        assert status == 200
        lid = lease["lease_id"]
        status, renewed = await _json(http, "POST", f"{b.url}/v1/leases/{lid}/renew")
        assert status == 200 and renewed["lease_id"] == lid
        status, _ = await _json(http, "POST", f"{b.url}/v1/leases/{lid}/release")
        assert status == 200
        status, _ = await _json(http, "POST", f"{b.url}/v1/leases/{lid}/release")
        assert status == 404
        # A learns the slot is free (housekeeping reconciles with the ledger) and grants again.
        status, again = await _json(
            http, "POST", f"{a.url}/v1/backends/gpu/acquire", {"timeout_s": 5}
        )
        assert status == 200
        _, backends = await _json(http, "GET", f"{a.url}/v1/backends")
        assert backends["backends"][0]["inflight"] == 1
        await _json(http, "POST", f"{a.url}/v1/leases/{again['lease_id']}/release")
