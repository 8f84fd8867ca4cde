"""Two and three scheduler replicas on one Redis admit in one global order (issue 30).

The experiment: graphs taught for a short app (0.1 s) and a long app (2.0 s); one slot held;
10 long runs queue, then 10 short runs, through alternating replicas; the slot is released and
every grant releases at once. With one order the short runs all go first; with per-replica
orders the short runs of one replica wait behind the long runs of the other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis
from server.conftest import Server, start_server

from hermes_sdk.server import BackendConfig, ServerConfig

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
_db = itertools.count(0)
StartReplicas = Callable[..., Any]


def _fresh_db(redis_url: str) -> str:
    """A flushed db (8-15, apart from test_server_replicas' low ones) on the session server."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{8 + next(_db) % 8}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[StartReplicas]:
    """``await cluster(n, **config)``: n in-process replicas on loopback ports, one Redis db."""
    started: list[Server] = []

    async def _start(n: int, **fields: Any) -> tuple[list[Server], str]:
        url = _fresh_db(redis_url)
        config = ServerConfig(
            port=0,
            store_url=url,
            backends={"gpu": BackendConfig(1, lease_s=30.0)},
            sync_interval_s=0.05,
            **fields,
        )
        servers = [await start_server(config) for _ in range(n)]
        started.extend(servers)
        return servers, url

    yield _start
    for server in started:
        await server.runner.cleanup()


async def _post(http: aiohttp.ClientSession, url: str, body: Any = None) -> tuple[int, Any]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


def _path(app: str, run_id: str, service_s: float) -> dict[str, Any]:
    stage = {"node": "step", "kind": "llm", "calls": [{"service_s": service_s}]}
    return {"type": "run_end", "run_id": run_id, "path": {"app": app, "stages": [stage]}}


async def _teach(http: aiohttp.ClientSession, servers: list[Server]) -> None:
    """Graphs for ``short`` (0.1 s) and ``long`` (2.0 s), taught on one replica, on all."""
    events = [_path("short", f"ts{i}", 0.1) for i in range(20)]
    events += [_path("long", f"tl{i}", 2.0) for i in range(20)]
    status, _ = await _post(http, f"{servers[0].url}/v1/events", {"events": events})
    assert status == 200
    for server in servers:
        for _ in range(200):
            async with http.get(f"{server.url}/v1/apps") as resp:
                apps = {a["app"]: a["runs"] for a in (await resp.json())["apps"]}
            if apps == {"short": 20, "long": 20}:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"{server.url} did not learn the graphs: {apps}")


async def _waiting(
    http: aiohttp.ClientSession, servers: list[Server], headers: dict[str, str] | None = None
) -> int:
    total = 0
    for server in servers:
        async with http.get(f"{server.url}/v1/backends", headers=headers) as resp:
            total += (await resp.json())["backends"][0]["waiting"]
    return total


def inversions(order: str) -> int:
    """Pairs in which a long run (L) was granted before a short one (S)."""
    longs = inv = 0
    for c in order:
        if c == "L":
            longs += 1
        else:
            inv += longs
    return inv


async def _experiment(servers: list[Server], redis_db: str) -> tuple[str, int, list[str]]:
    """Run the issue's experiment; returns (grant order, most slots held at once, lease ids)."""
    ledger = redis.Redis.from_url(redis_db)
    order: list[str] = []
    lease_ids: list[str] = []
    held = most_held = 0

    async with aiohttp.ClientSession() as http:
        await _teach(http, servers)
        status, holder = await _post(http, f"{servers[0].url}/v1/backends/gpu/acquire", {})
        assert status == 200

        async def run(kind: str, i: int, server: Server) -> None:
            nonlocal held, most_held
            body = {"run_id": f"{kind}{i}", "app": "short" if kind == "S" else "long"}
            status, lease = await _post(http, f"{server.url}/v1/backends/gpu/acquire", body)
            assert status == 200, lease
            held += 1
            most_held = max(most_held, held, int(ledger.zcard("hermes:slots:gpu")))
            order.append(kind)
            lease_ids.append(lease["lease_id"])
            await asyncio.sleep(0.01)  # "use" the slot
            held -= 1
            status, _ = await _post(http, f"{server.url}/v1/leases/{lease['lease_id']}/release")
            assert status == 200

        tasks = []
        n = 0
        for kind in ("L", "S"):
            for i in range(10):
                tasks.append(asyncio.create_task(run(kind, i, servers[n % len(servers)])))
                n += 1
                for _ in range(400):  # queued before the next one arrives
                    if await _waiting(http, servers) == n:
                        break
                    await asyncio.sleep(0.005)
                else:
                    raise AssertionError(f"request {n} never queued")
        status, _ = await _post(http, f"{servers[0].url}/v1/leases/{holder['lease_id']}/release")
        assert status == 200
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert int(ledger.zcard("hermes:slots:gpu")) == 0  # every slot came back
    ledger.close()
    return "".join(order), most_held, lease_ids


@pytest.mark.parametrize("replicas", [2, 3])
async def test_replicas_grant_in_one_global_order(cluster: StartReplicas, replicas: int) -> None:
    servers, url = await cluster(replicas)
    order, most_held, lease_ids = await _experiment(servers, url)
    print(f"replicas={len(servers)} order={order} inversions={inversions(order)}")
    assert sorted(order) == ["L"] * 10 + ["S"] * 10
    assert inversions(order) <= 5, order  # <= 5% of the 100 possible
    assert most_held == 1  # max_inflight=1 across the cluster: never over-admitted
    assert len(set(lease_ids)) == 20  # 20 waiters, 20 distinct grants: none granted twice


async def test_per_replica_orders_invert_without_the_global_order(
    cluster: StartReplicas,
) -> None:
    """The baseline the issue measured: the same experiment with each replica ordering only
    its own waiters lets long runs of one replica pass short runs of another."""
    servers, url = await cluster(2, global_order=False)
    order, most_held, lease_ids = await _experiment(servers, url)
    print(f"replicas={len(servers)} order={order} inversions={inversions(order)}")
    assert sorted(order) == ["L"] * 10 + ["S"] * 10
    assert inversions(order) > 5, order
    assert most_held == 1 and len(set(lease_ids)) == 20


KEYS = {"key-a": "acme", "key-b": "bravo"}


async def test_fair_sharing_holds_across_replicas(cluster: StartReplicas) -> None:
    """acme held the slot; acme waits at both replicas, bravo (behind on service) at one:
    bravo is served first although it queued last, on another replica than the releaser."""
    keys = ServerConfig().with_api_keys(KEYS).api_keys
    (a, b), _ = await cluster(2, api_keys=keys)
    order: list[str] = []
    async with aiohttp.ClientSession() as http:

        async def post(server: Server, key: str, path: str) -> tuple[int, Any]:
            headers = {"Authorization": f"Bearer {key}"}
            async with http.post(server.url + path, json={}, headers=headers) as resp:
                return resp.status, await resp.json()

        status, first = await post(a, "key-a", "/v1/backends/gpu/acquire")
        assert status == 200

        async def wait(server: Server, key: str) -> None:
            status, lease = await post(server, key, "/v1/backends/gpu/acquire")
            assert status == 200
            order.append(KEYS[key])
            await asyncio.sleep(0.01)
            await post(server, key, f"/v1/leases/{lease['lease_id']}/release")

        tasks = []
        for server, key in ((a, "key-a"), (b, "key-a"), (b, "key-b")):
            tasks.append(asyncio.create_task(wait(server, key)))
            while await _waiting(http, [a, b], {"Authorization": "Bearer key-a"}) < len(tasks):
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)  # acme's held time is the service it is charged
        await post(a, "key-a", f"/v1/leases/{first['lease_id']}/release")
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert order == ["bravo", "acme", "acme"]


@pytest.mark.parametrize(("global_order", "expected"), [(True, "TL"), (False, "LT")])
async def test_deadlines_order_across_replicas(
    cluster: StartReplicas, global_order: bool, expected: str
) -> None:
    """EDF: a loose-deadline run queued at A, then a tight one at B; the holder releases at A.
    One order grants the tight run first; per-replica orders hand A's slot to A's own waiter."""
    (a, b), _ = await cluster(2, policy="edf", global_order=global_order)
    order: list[str] = []
    async with aiohttp.ClientSession() as http:
        status, holder = await _post(http, f"{a.url}/v1/backends/gpu/acquire", {})
        assert status == 200

        async def wait(server: Server, name: str, deadline_s: float) -> None:
            body = {"run_id": name, "app": "x", "deadline_s": deadline_s}
            status, lease = await _post(http, f"{server.url}/v1/backends/gpu/acquire", body)
            assert status == 200
            order.append(name)
            await _post(http, f"{server.url}/v1/leases/{lease['lease_id']}/release")

        tasks = [asyncio.create_task(wait(a, "L", 30.0))]
        while await _waiting(http, [a, b]) < 1:
            await asyncio.sleep(0.005)
        tasks.append(asyncio.create_task(wait(b, "T", 5.0)))
        while await _waiting(http, [a, b]) < 2:
            await asyncio.sleep(0.005)
        await _post(http, f"{a.url}/v1/leases/{holder['lease_id']}/release")
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert "".join(order) == expected
