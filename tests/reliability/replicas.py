"""Scheduler replicas (``hermes serve`` processes) on one Redis with the global admission order.

Each ``async def scenario_*`` returns ``{"name", "passed", ...figures}``. A watcher samples the
shared slot ledger (ZCARD) every few ms, so an over-admission between two client observations
is seen too.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis

from .harness import RedisProcess, ServerProcess

SLOTS_KEY = "hermes:slots:gpu"


def _config(tmp: Path, redis_url: str, max_inflight: int, lease_s: float) -> Path:
    path = tmp / "replica.toml"
    path.write_text(
        f'[server]\nstore = "{redis_url}"\nsync_interval_s = 0.1\n'
        f"[backends.gpu]\nmax_inflight = {max_inflight}\nlease_s = {lease_s}\n"
    )
    return path


@asynccontextmanager
async def _watch_slots(url: str) -> AsyncIterator[list[int]]:
    """Yields [most slots held at once]; sampled every 2 ms while the block runs."""
    most = [0]
    client = redis.Redis.from_url(url)
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            most[0] = max(most[0], int(client.zcount(SLOTS_KEY, time.time(), "+inf")))
            await asyncio.sleep(0.002)

    task = asyncio.create_task(sample())
    try:
        yield most
    finally:
        stop.set()
        await task
        client.close()


async def _call(
    http: aiohttp.ClientSession, url: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    try:
        async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as r:
            data = await r.json(content_type=None)
            return r.status, data if isinstance(data, dict) else {}
    except (aiohttp.ClientError, TimeoutError) as exc:
        return -1, {"error": repr(exc)}


async def scenario_replicas_load(
    tmp: Path, *, replicas: int = 3, clients: int = 24, rounds: int = 10, max_inflight: int = 2
) -> dict[str, Any]:
    """Clients acquire, hold a few ms and release through random replicas, all at once: no
    slot over-admitted, no lease id granted twice, no 5xx, every acquire granted."""
    redis_proc = RedisProcess(tmp, persist=False)
    cfg = _config(tmp, redis_proc.url, max_inflight, 30.0)
    procs: list[ServerProcess] = []
    statuses: dict[int, int] = {}
    lease_ids: list[str] = []
    rng = random.Random(7)
    try:
        procs = [ServerProcess("--config", str(cfg)) for _ in range(replicas)]
        urls = [p.url for p in procs]
        t0 = time.perf_counter()
        async with _watch_slots(redis_proc.url) as most, aiohttp.ClientSession() as http:

            async def client(i: int) -> None:
                for _ in range(rounds):
                    url = rng.choice(urls)
                    status, lease = await _call(http, f"{url}/v1/backends/gpu/acquire", {})
                    statuses[status] = statuses.get(status, 0) + 1
                    if status != 200:
                        continue
                    lease_ids.append(lease["lease_id"])
                    await asyncio.sleep(rng.uniform(0.001, 0.01))
                    status, _ = await _call(
                        http, f"{rng.choice(urls)}/v1/leases/{lease['lease_id']}/release"
                    )
                    statuses[status] = statuses.get(status, 0) + 1

            await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed_s = time.perf_counter() - t0
        with redis.Redis.from_url(redis_proc.url) as r:
            ordered = int(r.get("hermes:seq") or 0)  # waiters that joined the global order
            left = int(r.zcard(SLOTS_KEY))
    finally:
        for p in procs:
            p.stop()
        redis_proc.stop()
    grants = len(lease_ids)
    return {
        "name": "replicas_load_global_order",
        "passed": grants == clients * rounds
        and len(set(lease_ids)) == grants
        and most[0] <= max_inflight
        and set(statuses) == {200}
        and ordered > 0
        and left == 0,
        "replicas": replicas,
        "clients": clients,
        "grants": grants,
        "distinct_lease_ids": len(set(lease_ids)),
        "max_inflight": max_inflight,
        "most_slots_held": most[0],
        "waiters_in_global_order": ordered,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "grants_per_s": round(grants / elapsed_s, 1),
        "slots_held_after": left,
    }


async def scenario_replica_killed_with_waiters(
    tmp: Path, *, waiters: int = 5, lease_s: float = 1.0
) -> dict[str, Any]:
    """A replica holding waiters is SIGKILLed while the only slot is held elsewhere: its
    clients see the connection fail and retry at the surviving replica; every one of them is
    granted exactly once, the slot is never held twice, and the dead replica's entries leave
    the order (PUBLISH to the dead replica's channel reaches nobody: dropped, not granted)."""
    redis_proc = RedisProcess(tmp, persist=False)
    cfg = _config(tmp, redis_proc.url, 1, lease_s)
    a = b = None
    served: dict[int, str] = {}
    retried = 0
    try:
        a = ServerProcess("--config", str(cfg))
        b = ServerProcess("--config", str(cfg))
        async with _watch_slots(redis_proc.url) as most, aiohttp.ClientSession() as http:
            status, holder = await _call(http, f"{b.url}/v1/backends/gpu/acquire", {})
            assert status == 200, holder

            async def client(i: int) -> None:
                nonlocal retried
                url = a.url  # type: ignore[union-attr]
                while True:
                    body = {"timeout_s": 20}
                    status, lease = await _call(http, f"{url}/v1/backends/gpu/acquire", body)
                    if status == 200:
                        served[i] = lease["lease_id"]
                        await _call(http, f"{url}/v1/leases/{lease['lease_id']}/release")
                        return
                    retried += 1
                    url = b.url  # type: ignore[union-attr]  # retry elsewhere

            tasks = [asyncio.create_task(client(i)) for i in range(waiters)]
            await asyncio.sleep(0.5)  # all queued at A
            a.kill()
            await asyncio.sleep(0.3)  # the clients noticed and queued again at B
            t0 = time.perf_counter()
            await _call(http, f"{b.url}/v1/leases/{holder['lease_id']}/release")
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
            served_s = time.perf_counter() - t0
        with redis.Redis.from_url(redis_proc.url) as r:
            left_waiting = sum(int(r.zcard(k)) for k in r.scan_iter("hermes:wait:gpu:*"))
            left_slots = int(r.zcard(SLOTS_KEY))
    finally:
        for p in (a, b):
            if p is not None:
                p.stop()
        redis_proc.stop()
    return {
        "name": "fault_replica_killed_with_waiters",
        "passed": len(served) == waiters
        and len(set(served.values())) == waiters
        and retried == waiters
        and most[0] <= 1
        and left_waiting == 0
        and left_slots == 0,
        "waiters": waiters,
        "retried_elsewhere": retried,
        "served": len(served),
        "distinct_lease_ids": len(set(served.values())),
        "most_slots_held": most[0],
        "all_served_s": round(served_s, 3),
        "left_in_order": left_waiting,
        "slots_held_after": left_slots,
        "lease_s": lease_s,
    }
