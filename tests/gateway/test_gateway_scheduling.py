"""Admission order by server-side rank, engine-native priority, demand recording, release."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from openai import APIError, AsyncOpenAI

from hermes_sdk.client.hints import rank_to_priority
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import Gw, StartEngine, StartGateway, engine_records, learn


def _body(max_tokens: int, **extra: object) -> dict[str, object]:
    msgs = [{"role": "user", "content": "hi"}]
    return {"model": "m", "messages": msgs, "max_tokens": max_tokens, **extra}


async def _queue_behind_blocker(
    gw: Gw, engine_url: str, headers: list[dict[str, str]]
) -> list[dict[str, object]]:
    """Hold the single slot, queue one request per ``headers`` in order, return engine records."""
    async with aiohttp.ClientSession() as s:

        async def post(h: dict[str, str], max_tokens: int) -> None:
            async with s.post(f"{gw.url}/chat/completions", json=_body(max_tokens), headers=h) as r:
                assert r.status == 200, await r.text()
                await r.read()

        blocker = asyncio.create_task(post({}, 100))
        await gw.wait_inflight("up", 1)
        tasks = []
        for i, h in enumerate(headers):
            tasks.append(asyncio.create_task(post(h, 1)))
            await gw.wait_inflight("up", 1, depth=i + 1)
        await asyncio.gather(blocker, *tasks)
    return sorted(await engine_records(engine_url), key=lambda r: int(r["seq"]))  # type: ignore[call-overload]


async def test_short_app_is_served_before_long_app(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1))
    learn(gw.scheduler, "short", 0.5)
    learn(gw.scheduler, "long", 60.0)
    apps = ["long", "short", "long", "short"]
    headers = [{"X-Hermes-App": a, "X-Hermes-Run": f"{a}-{i}"} for i, a in enumerate(apps)]
    records = await _queue_behind_blocker(gw, url, headers)
    order = [r["headers"].get("x-hermes-app") for r in records[1:]]  # type: ignore[union-attr]
    assert order == ["short", "short", "long", "long"]


async def test_lstf_serves_the_tight_deadline_first(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1), policy="lstf")
    learn(gw.scheduler, "qa", 2.0)
    deadlines = ["600", "5", "300", "10"]
    headers = [
        {"X-Hermes-App": "qa", "X-Hermes-Run": f"r{i}", "X-Hermes-Deadline": d}
        for i, d in enumerate(deadlines)
    ]
    records = await _queue_behind_blocker(gw, url, headers)
    order = [r["headers"].get("x-hermes-deadline") for r in records[1:]]  # type: ignore[union-attr]
    assert order == ["5", "10", "300", "600"]


async def test_without_hints_order_is_fcfs(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1))
    learn(gw.scheduler, "short", 0.5)
    headers = [{"X-Hermes-Unit": f"u{i}"} for i in range(5)]
    records = await _queue_behind_blocker(gw, url, headers)
    order = [r["headers"].get("x-hermes-unit") for r in records[1:]]  # type: ignore[union-attr]
    assert order == [f"u{i}" for i in range(5)]


@pytest.mark.parametrize("engine_kind", ["vllm", "sglang"])
async def test_engine_receives_mapped_priority_not_client_priority(
    stack: tuple[StartEngine, StartGateway], engine_kind: str
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, engine=engine_kind))
    learn(gw.scheduler, "qa", 2.0)
    assert gw.scheduler.ingest("default", [{"type": "run_start", "run_id": "r1", "app": "qa"}])
    headers = {"X-Hermes-App": "qa", "X-Hermes-Run": "r1"}
    meta_body = _body(2, priority=999, metadata={"hermes_app": "qa", "hermes_run": "r1"})
    async with aiohttp.ClientSession() as s:
        for h, b in ((headers, _body(2, priority=999)), ({}, meta_body)):
            async with s.post(f"{gw.url}/chat/completions", json=b, headers=h) as r:
                assert r.status == 200
    calls = list(gw.gateway.calls)
    seen = [int(r["priority"]) for r in await engine_records(url)]  # type: ignore[call-overload]
    for call, priority in zip(calls, seen, strict=True):
        assert call.run_id == "r1" and call.rank_s is not None
        assert priority == call.priority == rank_to_priority(call.rank_s, engine_kind)
    mirrored = rank_to_priority(calls[0].rank_s, "vllm" if engine_kind == "sglang" else "sglang")
    assert seen[0] == 63 - mirrored
    # The calls were recorded as units of the run: attained service grew, no unit left open.
    run = gw.scheduler.run("default", "r1")
    assert run is not None and not run.units and run.attained_s > 0
    assert calls[0].input_tokens and calls[0].output_tokens == 2


async def test_hint_only_run_gets_priority_from_its_app_graph(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, engine="vllm"))
    learn(gw.scheduler, "short", 0.05)
    learn(gw.scheduler, "long", 500.0)
    async with aiohttp.ClientSession() as s:
        for app in ("short", "long"):
            h = {"X-Hermes-App": app, "X-Hermes-Run": f"{app}-1"}
            async with s.post(f"{gw.url}/chat/completions", json=_body(1), headers=h) as r:
                assert r.status == 200
    short, long = (int(r["priority"]) for r in await engine_records(url))  # type: ignore[call-overload]
    assert short < long


@pytest.mark.parametrize("cancel", [True, False], ids=["handler-cancellation", "no-cancellation"])
async def test_client_disconnect_mid_stream_releases_slot(
    stack: tuple[StartEngine, StartGateway], cancel: bool
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1), handler_cancellation=cancel)
    async with aiohttp.ClientSession() as s:
        body = _body(100_000, stream=True)
        async with s.post(f"{gw.url}/chat/completions", json=body) as r:
            assert (await r.content.readline()).startswith(b"data: ")
            await gw.wait_inflight("up", 1)
        await gw.wait_inflight("up", 0)
        async with s.post(f"{gw.url}/chat/completions", json=_body(1)) as r:
            assert r.status == 200
    first = gw.gateway.calls[0]
    assert first.disconnected and first.failed
    for _ in range(500):  # the upstream request was aborted too (connection closed)
        (rec, _) = await engine_records(url)
        if rec["aborted"]:
            break
        await asyncio.sleep(0.002)
    assert rec["aborted"] is True


@pytest.mark.parametrize("cancel", [True, False], ids=["handler-cancellation", "no-cancellation"])
async def test_client_leaving_the_queue_frees_its_place(
    stack: tuple[StartEngine, StartGateway], cancel: bool
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1), handler_cancellation=cancel)
    async with aiohttp.ClientSession() as s:
        body = _body(100_000, stream=True)
        async with s.post(f"{gw.url}/chat/completions", json=body) as blocker:
            await blocker.content.readline()
            waiter = asyncio.create_task(s.post(f"{gw.url}/chat/completions", json=_body(1)))
            await gw.wait_inflight("up", 1, depth=1)
            waiter.cancel()
            await gw.wait_inflight("up", 1, depth=0)
        await gw.wait_inflight("up", 0)
    assert len(await engine_records(url)) == 1


async def test_upstream_error_passes_through_and_is_recorded_failed(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1))
    learn(gw.scheduler, "qa", 1.0)
    gw.scheduler.ingest("default", [{"type": "run_start", "run_id": "r1", "app": "qa"}])
    err = {"error": {"message": "engine overloaded", "type": "server_error", "code": 503}}
    async with aiohttp.ClientSession() as s:
        fault = {"status": 503, "body": err, "count": 1}
        async with s.post(url.removesuffix("/v1") + "/debug/faults", json=fault) as r:
            assert r.status == 200
        h = {"X-Hermes-App": "qa", "X-Hermes-Run": "r1"}
        for stream in (False, True):
            if stream:
                async with s.post(url.removesuffix("/v1") + "/debug/faults", json=fault) as r:
                    assert r.status == 200
            body = _body(3, stream=stream)
            async with s.post(f"{gw.url}/chat/completions", json=body, headers=h) as r:
                assert r.status == 503
                assert await r.json() == err
    await gw.wait_inflight("up", 0)
    assert [(c.status, c.failed) for c in gw.gateway.calls] == [(503, True), (503, True)]
    run = gw.scheduler.run("default", "r1")
    assert run is not None and not run.units


async def test_unreachable_upstream_is_502(stack: tuple[StartEngine, StartGateway]) -> None:
    _, gateway = stack
    gw = await gateway(UpstreamConfig("up", "http://127.0.0.1:9/v1", models=("m",)))
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/chat/completions", json=_body(1)) as r,
    ):
        assert r.status == 502
        assert (await r.json())["error"]["code"] == "upstream_error"
    await gw.wait_inflight("up", 0)


async def test_engine_without_priority_scheduling_gets_no_priority(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine(strict_priority=True)  # like vLLM without --scheduling-policy priority
    gw = await gateway(UpstreamConfig("up", url, engine="vllm"))
    async with aiohttp.ClientSession() as s:
        for stream in (True, False):
            async with s.post(f"{gw.url}/chat/completions", json=_body(1, stream=stream)) as r:
                assert r.status == 200, await r.text()
                assert (b"[DONE]" in await r.read()) is stream
    assert [c.priority for c in gw.gateway.calls] == [None, None]
    assert gw.gateway.priority_rejected == {"up"}
    assert [r["priority"] for r in await engine_records(url)] == [0, 0]


async def test_client_leaving_a_non_streaming_call_releases_slot(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1))
    async with aiohttp.ClientSession() as s:
        call = asyncio.create_task(s.post(f"{gw.url}/chat/completions", json=_body(100_000)))
        while not await engine_records(url):  # forwarded: the engine is generating
            await asyncio.sleep(0.002)
        call.cancel()
        await gw.wait_inflight("up", 0)
    (record,) = gw.gateway.calls
    assert record.disconnected and record.failed
    for _ in range(500):  # the gateway closed its upstream request, so the engine aborted it
        (seen,) = await engine_records(url)
        if seen["aborted"]:
            break
        await asyncio.sleep(0.002)
    assert seen["aborted"] is True


async def test_upstream_dying_mid_stream_fails_the_call_and_frees_the_slot(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1))
    async with aiohttp.ClientSession() as s:
        cut = {"cut_after_tokens": 3}
        async with s.post(url.removesuffix("/v1") + "/debug/faults", json=cut) as r:
            assert r.status == 200
        async with s.post(f"{gw.url}/chat/completions", json=_body(50, stream=True)) as r:
            assert r.status == 200
            received = await r.read()
        assert received.count(b'"content": " ') == 3 and b"[DONE]" not in received
        assert b'"upstream_error"' in received.rsplit(b"data: ", 1)[1]  # an SSE error event
        await gw.wait_inflight("up", 0)
        async with s.post(url.removesuffix("/v1") + "/debug/faults", json=cut) as r:
            assert r.status == 200
    client = AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "x"}]
    stream = await client.chat.completions.create(
        model="m",
        messages=msgs,  # type: ignore[arg-type]
        max_tokens=50,
        stream=True,
    )
    with pytest.raises(APIError, match="mid-stream"):  # the official client raises on it
        async for _ in stream:
            pass
    await client.close()
    await gw.wait_inflight("up", 0)
    assert [(c.status, c.failed, c.disconnected) for c in gw.gateway.calls] == [
        (502, True, False),
        (502, True, False),
    ]


async def test_engine_orders_forwarded_requests_by_the_gateways_priority(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    """Slots to spare at the gateway: the order comes from the engine's own priority queue."""
    engine, gateway = stack
    url = await engine(max_batch=1, priority_scheduling=True, preempt=False)
    gw = await gateway(UpstreamConfig("up", url, engine="vllm", max_inflight=16))
    learn(gw.scheduler, "short", 0.05)
    learn(gw.scheduler, "long", 500.0)
    async with aiohttp.ClientSession() as s:

        async def post(h: dict[str, str], max_tokens: int) -> None:
            async with s.post(f"{gw.url}/chat/completions", json=_body(max_tokens), headers=h) as r:
                assert r.status == 200
                await r.read()

        blocker = asyncio.create_task(post({}, 100))
        while not await engine_records(url):
            await asyncio.sleep(0.002)
        apps = ["long", "short", "long", "short"]
        tasks = []
        for i, app in enumerate(apps):
            h = {"X-Hermes-App": app, "X-Hermes-Run": f"{app}-{i}"}
            tasks.append(asyncio.create_task(post(h, 1)))
            while len(await engine_records(url)) < i + 2:  # each reached the engine's queue
                await asyncio.sleep(0.002)
        await asyncio.gather(blocker, *tasks)
    assert gw.scheduler.queues["up"].granted == 5  # nobody waited at the gateway
    records = sorted(await engine_records(url), key=lambda r: float(r["start_s"]))  # type: ignore[arg-type]
    order = [r["headers"].get("x-hermes-app") for r in records[1:]]  # type: ignore[union-attr]
    assert order == ["short", "short", "long", "long"]


async def test_queue_timeout_is_429_with_retry_after(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, max_inflight=1, timeout_s=0.3))
    async with aiohttp.ClientSession() as s:
        body = _body(100_000, stream=True)
        async with s.post(f"{gw.url}/chat/completions", json=body) as blocker:
            await blocker.content.readline()
            async with s.post(f"{gw.url}/chat/completions", json=_body(1)) as r:
                assert r.status == 429
                assert (await r.json())["error"]["code"] == "queue_timeout"
                assert int(r.headers["Retry-After"]) >= 1
        await gw.wait_inflight("up", 0)
