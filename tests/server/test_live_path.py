"""The scheduler's live path: grant->answer histogram, rank tables refreshed between requests,
and the run gauges kept without a scan of every run per event batch."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hermes_sdk.graph.records import Call, RunPath, RunState, Stage, path_to_dict
from hermes_sdk.server import BackendConfig, ServerConfig, create_app
from hermes_sdk.server.leases import SWEEP_CHUNK
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler
from hermes_sdk.server.wire import parse_batch
from hermes_sdk.store import open_store

from .conftest import StartServer

GPU = {"gpu": BackendConfig(max_inflight=1)}


def _path(app: str, service_s: float) -> dict[str, Any]:
    stages = (Stage("plan", (Call(service_s),), "llm", "gpu"), Stage("act", (Call(1.0),), "tool"))
    return path_to_dict(RunPath(app=app, stages=stages))


async def _post(http: aiohttp.ClientSession, url: str, body: object = None) -> Any:
    async with http.post(url, json=body) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def _metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


async def test_only_queued_grants_are_timed_from_grant_to_answer(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends=GPU)
    count = 'hermes_grant_answer_seconds_count{backend="gpu"}'
    acquire = f"{server.url}/v1/backends/gpu/acquire"
    holder = await _post(http, acquire)  # a free slot: granted at once, not timed
    assert await _metric(http, server.url, count) == 0.0
    waiting = asyncio.ensure_future(_post(http, acquire, {"run_id": "r"}))
    for _ in range(500):
        if server.app[SCHEDULER].queue("gpu").depth == 1:
            break
        await asyncio.sleep(0.01)
    await _post(http, f"{server.url}/v1/leases/{holder['lease_id']}/release")
    lease = await waiting
    assert lease["waited_s"] > 0.0
    assert await _metric(http, server.url, count) == 1.0
    answer_s = await _metric(http, server.url, 'hermes_grant_answer_seconds_sum{backend="gpu"}')
    assert 0.0 <= answer_s < lease["waited_s"] + 1.0


async def test_learning_rebuilds_due_tables_in_a_task_between_requests(tmp_path: Path) -> None:
    config = ServerConfig(store_url=f"sqlite:///{tmp_path}/s.db", backends=GPU)
    sched = Scheduler(config, open_store(config.store_url), ServerMetrics())
    tables = sched.registry.rank_tables
    assert tables is not None

    async def learn(prefix: str, n: int, service_s: float) -> None:
        body = {"events": [{"type": "run_end", "run_id": f"{prefix}{i}",
                            "path": _path("a", service_s)} for i in range(n)]}  # fmt: skip
        events, dropped = parse_batch(body, "default")
        await sched.apply_async("default", events, dropped)

    await learn("t", 20, 2.0)
    state = RunState(node="plan", visits=(("plan", 1),), running=True, elapsed_s=0.5)
    before = tables.gittins("a", state, "default")  # first sight builds its table
    built, inline = tables.rebuilds, tables.inline_rebuilds
    await learn("u", 10, 8.0)  # 10 new runs > the allowance max(0.2 * 20, 8)
    assert tables.due() == 1  # the request returned before the rebuild ...
    assert tables.rebuilds == built
    for _ in range(100):  # ... which a task does between requests, a step per loop turn
        await asyncio.sleep(0)
    assert tables.due() == 0 and tables.rebuilds == built + 1
    after = tables.gittins("a", state, "default")
    assert tables.inline_rebuilds == inline  # the lookup found the rebuilt table
    assert after[0] > before[0]  # and it knows the calls grew longer
    sched.close()


def _recount(sched: Scheduler) -> tuple[float, float]:
    runs = sched._runs.values()
    paused = sum(1 for r in runs if r.paused)
    return float(len(runs) - paused), float(paused)


def _gauges(sched: Scheduler) -> tuple[float, float]:
    text = sched.metrics.render().decode()
    found = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("hermes_runs_active ", "hermes_runs_paused "))
    }
    return found["hermes_runs_active"], found["hermes_runs_paused"]


def test_run_gauges_match_a_full_recount_after_every_batch() -> None:
    config = ServerConfig(store_url="memory://", backends=GPU)
    sched = Scheduler(config, open_store("memory://"), ServerMetrics())
    rng = random.Random(5)
    for _ in range(300):
        batch = []
        for _ in range(rng.randint(1, 6)):
            rid = f"r{rng.randint(0, 9)}"
            kind = rng.choice(["run_start", "run_pause", "run_end", "unit_start"])
            ev: dict[str, Any] = {"type": kind, "run_id": rid}
            if kind == "run_start":
                ev["app"] = "a"
            elif kind == "unit_start":
                ev.update(unit_id=str(rng.random()), node="plan")
            batch.append(ev)
        sched.ingest("t", batch)
        assert _gauges(sched) == _recount(sched)
    sched.close()


async def test_the_sweep_removes_gone_clients_across_chunks(tmp_path: Path) -> None:
    """Without handler cancellation only the sweep notices clients that went away; more than a
    chunk of them are all removed (the sweep yields between chunks, it does not stop)."""
    config = ServerConfig(store_url=f"sqlite:///{tmp_path}/s.db", port=0, backends=GPU)
    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    queue = app[SCHEDULER].queue("gpu")
    n = SWEEP_CHUNK + 44
    try:
        async with aiohttp.ClientSession() as keep:
            holder = await _post(keep, f"{url}/v1/backends/gpu/acquire")
            gone = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            waiters = [
                asyncio.ensure_future(gone.post(f"{url}/v1/backends/gpu/acquire", json={}))
                for _ in range(n)
            ]
            for _ in range(1000):
                if queue.depth == n:
                    break
                await asyncio.sleep(0.01)
            assert queue.depth == n
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            await gone.close()  # the connections close; nobody cancels the handlers
            for _ in range(500):
                if queue.depth == 0:
                    break
                await asyncio.sleep(0.01)
            assert queue.depth == 0
            await _post(keep, f"{url}/v1/leases/{holder['lease_id']}/release")
            assert queue.inflight == 0  # nothing was granted to a gone client
    finally:
        await runner.cleanup()
