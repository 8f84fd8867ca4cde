"""Fault scenarios: scheduler killed mid-load, Redis restarted under two replicas, upstream
5xx/timeouts/cut and slow streams, webhook target down, wall-clock jumps, a slot held too long.

Each ``async def scenario_*`` returns ``{"name", "passed", ...figures}``.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hermes_sdk.client.breaker import CircuitBreaker
from hermes_sdk.client.scheduler import SchedulerClient
from hermes_sdk.errors import HermesError
from hermes_sdk.prewarm.webhook import WebhookAdapter
from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.scheduler import Scheduler
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.server.wire import RunStart, UnitEnd, UnitStart
from hermes_sdk.sim.engine import SimEngineConfig
from hermes_sdk.store import open_store

from .harness import RedisProcess, ServerProcess, free_port, running, with_engine


def _path(app: str, n: int) -> dict[str, object]:
    return {"app": app, "stages": [
        {"node": f"s{k % 3}", "kind": "llm", "calls": [{"service_s": 0.01}]} for k in range(n)
    ]}  # fmt: skip


async def scenario_kill_restart(
    tmp: Path, *, n_apps: int = 50, n_units: int = 10, kill_after_s: float = 0.5,
    down_s: float = 0.5,
) -> dict[str, Any]:  # fmt: skip
    """SIGKILL `hermes serve` mid-load, restart it on the same port and store.

    Apps use the fail-open SchedulerClient: while the server is down a slot is ``None`` at once
    and the unit runs anyway; after the restart grants resume (each app runs ``n_units`` units
    and then on until it was granted two slots by the restarted server). Every run path acknowledged
    (``POST /v1/events`` answered) must be in the store afterwards.
    """
    db, port = tmp / "kill.db", free_port()
    args = ("--store", f"sqlite:///{db}", "--backend", "gpu=8")
    first = ServerProcess(*args, port=port)
    url = first.url
    acked: list[str] = []
    granted_before = granted_after = failed_open = 0
    fail_open_s: list[float] = []
    restarted = asyncio.Event()
    errors: list[str] = []

    async def app(i: int) -> None:
        nonlocal granted_before, granted_after, failed_open
        # a connect timeout above the 50 ms default: on a loaded 2-core box, hundreds of fresh
        # connections at once would otherwise fail open before the kill (measured separately)
        client = SchedulerClient(
            url, connect_timeout_s=0.5, breaker=CircuitBreaker(threshold=3, open_s=0.1)
        )
        try:
            mine_after = k = 0
            give_up_at = time.perf_counter() + 120.0
            # at least n_units units, and on until this app was granted slots after the restart
            while k < n_units or (mine_after < 2 and time.perf_counter() < give_up_at):
                k += 1
                t0 = time.perf_counter()
                async with client.slot("gpu", run_id=f"r{i}-{k}") as grant:
                    if grant is None:
                        failed_open += 1
                        fail_open_s.append(time.perf_counter() - t0)
                    elif restarted.is_set():
                        granted_after += 1
                        mine_after += 1
                    else:
                        granted_before += 1
                    await asyncio.sleep(0.01)
                run_id = f"r{i}-{k}"
                end = {"type": "run_end", "run_id": run_id, "failed": False, "path": _path("kq", 2)}
                try:
                    await client.send_events([end])
                    acked.append(run_id)
                except HermesError:
                    pass  # not acknowledged: the app's recorder would retry later
                await asyncio.sleep(0.02)
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            await client.close()

    tasks = [asyncio.create_task(app(i)) for i in range(n_apps)]
    await asyncio.sleep(kill_after_s)
    acked_before_kill = len(acked)
    first.kill()
    await asyncio.sleep(down_s)
    second = await asyncio.to_thread(ServerProcess, *args, port=port)  # keep the apps running
    restarted.set()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        second.stop()
    store = open_store(f"sqlite:///{db}")
    try:
        stored = {p.run_id for p in store.load_paths()}
    finally:
        store.close()
    lost = sorted(set(acked) - stored)
    return {
        "name": "fault_scheduler_killed_mid_load",
        "passed": not errors and not lost and failed_open > 0 and granted_after > 0,
        "apps": n_apps,
        "units": granted_before + failed_open + granted_after,
        "acknowledged_before_kill": acked_before_kill,
        "acknowledged": len(acked),
        "stored": len(stored),
        "lost_acknowledged": len(lost),
        "granted_before_kill": granted_before,
        "failed_open_units": failed_open,
        "granted_after_restart": granted_after,
        "fail_open_p99_ms": round(sorted(fail_open_s)[int(0.99 * (len(fail_open_s) - 1))] * 1e3, 2)
        if fail_open_s
        else None,
        "errors": errors[:3],
    }


async def _status(
    http: aiohttp.ClientSession, method: str, url: str, body: object = None
) -> tuple[int, Any]:
    try:
        async with http.request(
            method, url, json=body, timeout=aiohttp.ClientTimeout(total=10)
        ) as r:
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return -1, repr(exc)


async def scenario_redis_restart(tmp: Path, *, persist: bool = True) -> dict[str, Any]:
    """Kill and restart Redis under two replicas: outage answers are JSON 503 (or fail-open
    admission), never 500; both replicas recover by themselves.

    With ``persist`` (AOF, fsync always) every acknowledged path is in both graphs afterwards.
    Without, Redis comes back empty: what the replicas had learned stays in their graphs and
    paths written after the restart still reach both (the replicas re-read the shorter log).
    """
    redis = RedisProcess(tmp, persist=persist)
    cfg = ServerConfig(
        port=0, store_url=redis.url, backends={"gpu": BackendConfig(max_inflight=2)},
        sync_interval_s=0.1,
    )  # fmt: skip
    acked = 0
    outage: list[tuple[int, str]] = []
    recovery_s = math.nan
    try:
        async with running(cfg) as (_, a), running(cfg) as (_, b), aiohttp.ClientSession() as http:

            async def end(url: str, run_id: str) -> tuple[int, Any]:
                ev = {"type": "run_end", "run_id": run_id, "path": _path("rq", 2)}
                return await _status(http, "POST", url + "/v1/events", {"events": [ev]})

            for i in range(10):
                if (await end((a, b)[i % 2], f"pre{i}"))[0] == 200:
                    acked += 1
            if not persist:
                await asyncio.sleep(0.3)  # both replicas pull each other's paths first
            redis.stop()
            for url in (a, b):
                for method, path, body in (
                    ("POST", "/v1/events", None),
                    ("POST", "/v1/backends/gpu/acquire", {"timeout_s": 0.2}),
                    ("GET", "/v1/apps", None),
                    ("POST", "/v1/runs", {"app": "rq"}),
                ):
                    if path == "/v1/events":
                        status, data = await end(url, "during")
                    else:
                        status, data = await _status(http, method, url + path, body)
                    code = data.get("error", {}).get("code") if isinstance(data, dict) else data
                    outage.append((status, f"{path}:{code}"))
            redis.start()
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 20:
                sa, _ = await end(a, "post-a")
                sb, _ = await end(b, "post-b")
                if sa == sb == 200:
                    acked += 2
                    break
                await asyncio.sleep(0.1)
            recovery_s = time.perf_counter() - t0
            grants = []
            for url in (a, b):
                status, lease = await _status(http, "POST", url + "/v1/backends/gpu/acquire", {})
                grants.append(status)
                if status == 200:
                    await _status(http, "POST", f"{url}/v1/leases/{lease['lease_id']}/release")
            await asyncio.sleep(0.3)  # a sync interval or two
            runs = []
            for url in (a, b):
                _, apps = await _status(http, "GET", url + "/v1/apps")
                runs.append({x["app"]: x["runs"] for x in apps["apps"]}.get("rq", 0))
    finally:
        redis.stop()
    no_500 = all(s != 500 and s >= 0 for s, _ in outage)
    return {
        "name": "fault_redis_restart_two_replicas" + ("" if persist else "_no_persistence"),
        "redis_persistence": "aof-fsync-always" if persist else "none",
        "passed": no_500 and grants == [200, 200] and runs == [acked, acked],
        "acknowledged_paths": acked,
        "graph_runs_per_replica": runs,
        "outage_answers": [f"{s} {c}" for s, c in outage],
        "recovery_s": round(recovery_s, 3),
        "grants_after_recovery": grants,
    }


async def _slow_upstream(delay_s: float, chunk_gap_s: float, chunks: int) -> web.AppRunner:
    """An OpenAI-shaped upstream that answers after ``delay_s`` and streams slowly."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "slow", "object": "model"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await asyncio.sleep(delay_s)
        if not body.get("stream"):
            return web.json_response({"id": "x", "choices": [], "usage": {"prompt_tokens": 1}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for k in range(chunks):
            await resp.write(f'data: {{"id": "s", "choices": [], "n": {k}}}\n\n'.encode())
            await asyncio.sleep(chunk_gap_s)
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def scenario_upstream_faults(tmp: Path) -> dict[str, Any]:
    """Engine 5xx, cut streams, an engine slower than the gateway's timeout and a slow but
    steady stream: the gateway answers each (relayed 5xx, 502/504, or the full stream), never
    hangs, and every slot comes back."""
    msgs = [{"role": "user", "content": "hi"}]
    out: dict[str, Any] = {}
    cfg = ServerConfig(port=0, store_url=f"sqlite:///{tmp}/up.db")
    sim = SimEngineConfig(min_output_tokens=6, max_output_tokens=6)
    async with (
        with_engine(cfg, sim, max_inflight=2) as (_, url, eng),
        aiohttp.ClientSession() as http,
    ):
        base = eng.removesuffix("/v1")
        await _status(http, "POST", base + "/debug/faults", {"status": 503, "count": 3})
        statuses = [
            (await _status(http, "POST", url + "/v1/chat/completions",
                           {"model": "sim-model", "messages": msgs}))[0]
            for _ in range(4)
        ]  # fmt: skip
        out["engine_5xx_statuses"] = statuses
        await _status(http, "POST", base + "/debug/faults", {"cut_after_tokens": 2, "count": 2})
        cut = []
        for _ in range(3):
            async with http.post(
                url + "/v1/chat/completions",
                json={"model": "sim-model", "messages": msgs, "stream": True},
            ) as r:
                try:
                    text = (await r.read()).decode()
                except aiohttp.ClientPayloadError:
                    text = "<payload error>"
                cut.append((r.status, "[DONE]" in text))
        out["cut_streams"] = [f"{s} done={d}" for s, d in cut]
        _, backends = await _status(http, "GET", url + "/v1/backends")
        sim_backend = {b["name"]: b for b in backends["backends"]}["sim"]
        out["sim_inflight_after"] = sim_backend["inflight"]
        out["sim_waiting_after"] = sim_backend["waiting"]
    slow = await _slow_upstream(delay_s=1.0, chunk_gap_s=0.15, chunks=5)
    steady = await _slow_upstream(delay_s=0.0, chunk_gap_s=0.15, chunks=5)
    try:
        ups = []
        for name, runner in (("slow", slow), ("steady", steady)):
            host, port = runner.addresses[0][:2]
            ups.append(UpstreamConfig(name=name, url=f"http://{host}:{port}/v1", models=(name,),
                                      timeout_s=0.4, max_inflight=1))  # fmt: skip
        cfg2 = replace(cfg, store_url=f"sqlite:///{tmp}/up2.db", upstreams=tuple(ups))
        async with running(cfg2) as (_, url), aiohttp.ClientSession() as http:
            t0 = time.perf_counter()
            status, data = await _status(
                http, "POST", url + "/v1/chat/completions", {"model": "slow", "messages": msgs}
            )
            out["timeout_status"] = status
            out["timeout_code"] = (
                data.get("error", {}).get("code") if isinstance(data, dict) else None
            )
            out["timeout_answer_s"] = round(time.perf_counter() - t0, 3)
            async with http.post(
                url + "/v1/chat/completions",
                json={"model": "steady", "messages": msgs, "stream": True},
            ) as r:
                text = (await r.read()).decode()
            out["slow_stream_status"] = r.status
            out["slow_stream_chunks"] = text.count('"n":')
            _, backends = await _status(http, "GET", url + "/v1/backends")
            out["inflight_after"] = sum(b["inflight"] for b in backends["backends"])
    finally:
        await slow.cleanup()
        await steady.cleanup()
    passed = (
        out["engine_5xx_statuses"][:3] == [503] * 3 and out["engine_5xx_statuses"][3] == 200
        and cut[2] == (200, True) and out["sim_inflight_after"] == 0
        and out["sim_waiting_after"] == 0 and out["timeout_status"] in (502, 504)
        and out["slow_stream_status"] == 200 and out["slow_stream_chunks"] == 5
        and out["inflight_after"] == 0
    )  # fmt: skip
    return {"name": "fault_upstream_5xx_timeout_slow_stream", "passed": passed, **out}


async def scenario_webhook_down(tmp: Path) -> dict[str, Any]:
    """The prewarm webhook target is down: callers never wait, deliveries give up after
    ``max_attempts``; once it is back, signals are delivered (same Idempotency-Key on retries)."""
    port = free_port()
    hook = WebhookAdapter(
        f"http://127.0.0.1:{port}/hook", max_attempts=3, backoff_base_s=0.01, timeout_s=0.5,
        headers={"Authorization": "Bearer webhook-secret-Qx7"},
    )  # fmt: skip
    t0 = time.perf_counter()
    for i in range(20):
        await hook.prewarm("gpu", reason="test", eta_s=1.0, key=f"k{i}")
    call_s = time.perf_counter() - t0
    await hook.drain()
    down = (hook.stats.delivered, hook.stats.gave_up, hook.stats.attempts)
    seen: list[str] = []
    fail_first = {"n": 2}

    async def receive(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Idempotency-Key", ""))
        if fail_first["n"] > 0:
            fail_first["n"] -= 1
            return web.Response(status=503)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await hook.prewarm("gpu", key="back")
        await hook.release("gpu", key="back-release")
        await hook.drain()
    finally:
        await hook.aclose()
        await runner.cleanup()
    delivered_after = hook.stats.delivered
    return {
        "name": "fault_webhook_target_down",
        "passed": down[0] == 0
        and down[1] == 20
        and down[2] == 60
        and delivered_after == 2
        and sorted(set(seen)) == ["back", "back-release"]
        and len(seen) == 4
        and call_s < 1.0,
        "signals_while_down": 20,
        "enqueue_total_ms": round(call_s * 1000, 2),
        "gave_up_while_down": down[1],
        "attempts_while_down": down[2],
        "delivered_after_back": delivered_after,
        "receiver_saw_keys": seen,
    }


async def scenario_clock_jumps(tmp: Path, *, forward_s: float = 3600.0) -> dict[str, Any]:
    """The scheduler's wall clock (injectable) jumps back a day and forward ``forward_s``:
    ranks stay numbers in the same order, no lease is reclaimed early (leases run on the
    monotonic clock), waiters are granted in order once the holder releases.

    Also reported: a forward jump beyond ``run_idle_s`` makes the scheduler forget active runs.
    """
    wall = [1_800_000_000.0]
    cfg = ServerConfig(
        port=0, store_url="memory://", backends={"gpu": BackendConfig(max_inflight=1, lease_s=60)}
    )
    sched = Scheduler(cfg, open_store("memory://"), ServerMetrics(), clock=lambda: wall[0])
    try:
        for i in range(30):  # learn the app: short runs and long runs
            n = 1 if i % 3 else 6
            sched.ingest("t", [{"type": "run_end", "run_id": f"h{i}", "path": _path("cq", n)}])
        sched.apply("t", [RunStart(run_id="near", app="cq"), RunStart(run_id="far", app="cq")])
        for k in range(4):  # "near" is deep into its run, "far" has just started
            sched.apply(
                "t", [UnitStart(run_id="near", unit_id=f"u{k}", node=f"s{k % 3}", kind="llm")]
            )
            sched.apply("t", [UnitEnd(run_id="near", unit_id=f"u{k}", service_s=0.01)])
        holder = await sched.acquire("gpu", tenant="t")
        waiters = {
            rid: asyncio.ensure_future(sched.acquire("gpu", tenant="t", run_id=rid))
            for rid in ("far", "near")
        }
        await asyncio.sleep(0)
        ranks: dict[str, list[float | None]] = {"far": [], "near": []}
        reclaimed = []
        for jump in (0.0, -86400.0, forward_s + 86400.0):
            wall[0] += jump
            for rid in ranks:
                ranks[rid].append(sched.rank_of("t", rid))
            reclaimed.append(sched.reclaim_expired())
            sched.forget_idle_runs()
            for q in sched.queues.values():
                q.rerank(("t", "near"))
                q.rerank(("t", "far"))
        order = [w[2][1] for w in sched.queue("gpu").waiting()]  # type: ignore[index]
        sched.release(holder.lease_id)
        first = await asyncio.wait_for(asyncio.shield(asyncio.wait(
            waiters.values(), return_when=asyncio.FIRST_COMPLETED)), 5)  # fmt: skip
        first_granted = next(r for r, f in waiters.items() if f in first[0])
        lease = waiters[first_granted].result()
        sched.release(lease.lease_id)
        second = await asyncio.wait_for(next(f for f in waiters.values() if not f.done()), 5)
        sched.release(second.lease_id)
        inflight = sched.queue("gpu").inflight
        wall[0] += cfg.run_idle_s + 1
        forgotten = sched.forget_idle_runs()
    finally:
        sched.close()
    numbers = all(r is not None and not math.isnan(r) for rs in ranks.values() for r in rs)
    same_order = all(
        (n < f) == (ranks["near"][0] < ranks["far"][0])  # type: ignore[operator]
        for n, f in zip(ranks["near"], ranks["far"], strict=True)
    )
    return {
        "name": "fault_clock_jumps",
        "passed": numbers
        and same_order
        and not any(reclaimed)
        and order[0] == first_granted
        and inflight == 0,
        "ranks_s": {k: [None if v is None else round(v, 4) for v in vs] for k, vs in ranks.items()},
        "jumps_s": [0.0, -86400.0, forward_s + 86400.0],
        "leases_reclaimed_by_jumps": sum(reclaimed),
        "queue_order": order,
        "first_granted": first_granted,
        "inflight_after": inflight,
        "runs_forgotten_after_jump_beyond_run_idle_s": forgotten,
    }


async def scenario_slow_client(tmp: Path, *, lease_s: float = 0.3) -> dict[str, Any]:
    """A client that never releases loses its slot after ``lease_s`` (the next waiter gets it,
    the late release is refused); a slow but live SchedulerClient renews and keeps its slot."""
    cfg = ServerConfig(
        port=0, store_url=f"sqlite:///{tmp}/slow.db",
        backends={"gpu": BackendConfig(max_inflight=1, lease_s=lease_s)}, sync_interval_s=0.05,
    )  # fmt: skip
    async with running(cfg) as (_, url), aiohttp.ClientSession() as http:
        acq = url + "/v1/backends/gpu/acquire"
        _, hog = await _status(http, "POST", acq, {})
        t0 = time.perf_counter()
        status_b, lease_b = await _status(http, "POST", acq, {"timeout_s": 10})
        waited_s = time.perf_counter() - t0
        late, _ = await _status(http, "POST", f"{url}/v1/leases/{hog['lease_id']}/release")
        ok_b, _ = await _status(http, "POST", f"{url}/v1/leases/{lease_b['lease_id']}/release")
        async with (
            SchedulerClient(url, connect_timeout_s=5.0) as client,
            client.slot("gpu") as grant,
        ):
            await asyncio.sleep(lease_s * 3)  # far longer than the lease: renewed at half
            _, backends = await _status(http, "GET", url + "/v1/backends")
            kept = backends["backends"][0]["inflight"] == 1 and grant is not None
            status_c, _ = await _status(http, "POST", acq, {"timeout_s": 0.05})
        _, backends = await _status(http, "GET", url + "/v1/backends")
        async with http.get(url + "/metrics") as r:
            reclaimed = sum(
                float(line.rsplit(" ", 1)[1]) for line in (await r.text()).splitlines()
                if line.startswith("hermes_leases_reclaimed_total{")
            )  # fmt: skip
    inflight = backends["backends"][0]["inflight"]
    return {
        "name": "fault_slow_client_lease_expiry",
        "passed": status_b == 200
        and late == 404
        and ok_b == 200
        and kept
        and status_c == 429
        and reclaimed == 1
        and inflight == 0,
        "lease_s": lease_s,
        "next_waiter_granted_after_s": round(waited_s, 3),
        "late_release_status": late,
        "leases_reclaimed": reclaimed,
        "renewing_client_kept_slot_for_s": lease_s * 3,
        "others_refused_while_renewed": status_c,
        "inflight_after": inflight,
    }
