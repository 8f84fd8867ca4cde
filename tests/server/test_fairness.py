"""Server: fair sharing across tenants at admission, the starvation guard, and /metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from hermes_sdk.policy.aging import AgingPolicy
from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.server.config import load_config
from hermes_sdk.server.scheduler import SCHEDULER

from .conftest import Server, StartServer

KEYS = {"key-a": "acme", "key-b": "bravo"}


async def _post(
    http: aiohttp.ClientSession, server: Server, key: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with http.post(server.url + path, json=body or {}, headers=headers) as resp:
        return resp.status, await resp.json()


async def _start(serve: StartServer, **fields: Any) -> Server:
    base = ServerConfig(backends={"gpu": BackendConfig(max_inflight=1)}).with_api_keys(KEYS)
    return await serve(backends=base.backends, api_keys=base.api_keys, **fields)


async def _grant_order(http: aiohttp.ClientSession, server: Server) -> list[str]:
    """acme holds the slot, then acme queues twice and bravo once; who gets it in turn."""
    status, first = await _post(http, server, "key-a", "/v1/backends/gpu/acquire")
    assert status == 200
    order: list[str] = []

    async def wait(key: str) -> None:
        status, lease = await _post(http, server, key, "/v1/backends/gpu/acquire")
        assert status == 200
        order.append(KEYS[key])
        await asyncio.sleep(0.01)
        await _post(http, server, key, f"/v1/leases/{lease['lease_id']}/release")

    sched = server.app[SCHEDULER]
    tasks = []
    for key in ("key-a", "key-a", "key-b"):
        tasks.append(asyncio.create_task(wait(key)))
        while sched.queue("gpu").depth < len(tasks):  # queue them in this order
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)  # acme's held time is the service it is charged
    await _post(http, server, "key-a", f"/v1/leases/{first['lease_id']}/release")
    await asyncio.gather(*tasks)
    return order


async def test_the_tenant_behind_on_service_is_admitted_first(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await _start(serve)
    assert server.app[SCHEDULER].policy.name == "gittins+fair"  # two tenants: on
    assert await _grant_order(http, server) == ["bravo", "acme", "acme"]
    async with http.get(f"{server.url}/metrics") as resp:
        text = await resp.text()
    shares = {
        line.split('tenant="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hermes_tenant_service_share{")
    }
    assert set(shares) == {"acme", "bravo"} and abs(sum(shares.values()) - 1.0) < 1e-9
    assert shares["acme"] > shares["bravo"]
    assert 'hermes_tenant_service_seconds_total{backend="gpu",tenant="bravo"}' in text


async def test_without_fairness_the_queue_is_first_come(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    off = ServerConfig().fairness.__class__(enabled=False)
    server = await _start(serve, fairness=off)
    assert server.app[SCHEDULER].policy.name == "gittins"
    assert await _grant_order(http, server) == ["acme", "acme", "bravo"]


async def test_max_slowdown_gauge_after_run_end(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await _start(serve)
    path = {
        "app": "qa",
        "stages": [{"node": "plan", "kind": "llm", "calls": [{"service_s": 1e-3}]}],
    }
    status, _ = await _post(http, server, "key-a", "/v1/runs", {"app": "qa", "run_id": "r1"})
    assert status == 201
    await asyncio.sleep(0.05)  # the run lasts >= 50 ms for 1 ms of service: slowdown >= 50
    events = {"events": [{"type": "run_end", "run_id": "r1", "failed": False, "path": path}]}
    status, _ = await _post(http, server, "key-a", "/v1/events", events)
    assert status == 200
    async with http.get(f"{server.url}/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("hermes_tenant_max_slowdown{"))
    assert 'tenant="acme"' in line and float(line.rsplit(" ", 1)[1]) >= 50.0


async def test_fairness_table_in_hermes_toml(tmp_path: Path, serve: StartServer) -> None:
    toml = tmp_path / "hermes.toml"
    toml.write_text(
        "[fairness]\nslowdown_cap = 4\n[fairness.weights]\nbravo = 3\n"
        '[backends.gpu]\nmax_inflight = 2\n[[api_keys]]\ntenant = "acme"\nkey = "k"\n',
        encoding="utf-8",
    )
    cfg = load_config(toml)
    assert cfg.fairness.slowdown_cap == 4.0 and dict(cfg.fairness.weights) == {"bravo": 3.0}
    server = await serve(backends=cfg.backends, api_keys=cfg.api_keys, fairness=cfg.fairness)
    sched = server.app[SCHEDULER]
    # acme (a key) and bravo (a weight): two tenants configured, so fair sharing is on
    assert sched.policy.name == "gittins_aging+fair"
    assert sched.shares is not None and sched.shares.weight("bravo") == 3.0
    assert sched.time_varying  # aging ranks fall with time: queues compare order keys


async def test_uncapped_guard_from_hermes_toml(tmp_path: Path, serve: StartServer) -> None:
    """`max_boost_s = inf` (a TOML float) turns the cap off: the guard that bounds every wait."""
    toml = tmp_path / "hermes.toml"
    toml.write_text(
        "[fairness]\nslowdown_cap = 4\nmax_boost_s = inf\n[backends.gpu]\nmax_inflight = 1\n",
        encoding="utf-8",
    )
    cfg = load_config(toml)
    assert cfg.fairness.max_boost_s == float("inf")
    server = await serve(backends=cfg.backends, fairness=cfg.fairness)
    policy = server.app[SCHEDULER].policy
    assert policy.name == "gittins_aging"  # one tenant: no fair-share wrapper
    assert isinstance(policy, AgingPolicy) and policy.max_boost_s is None


async def test_a_reclaimed_lease_stops_counting_as_backlog(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    base = ServerConfig(backends={"gpu": BackendConfig(max_inflight=1, lease_s=0.05)})
    server = await serve(backends=base.backends, api_keys=base.with_api_keys(KEYS).api_keys)
    sched = server.app[SCHEDULER]
    assert sched.shares is not None
    status, _ = await _post(http, server, "key-a", "/v1/backends/gpu/acquire")
    assert status == 200
    assert sched.shares.backlogged("gpu") == ["acme"]
    await asyncio.sleep(0.1)  # the client died holding the lease
    sched.reclaim_expired()  # (or the housekeeping loop already did)
    assert sched.shares.backlogged("gpu") == []
