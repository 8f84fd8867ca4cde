"""The simulated engine on loopback: OpenAI wire format, batching order, priority, cold start."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from openai import AsyncOpenAI

from hermes_sdk.sim.engine import SimEngineConfig, count_tokens, serve_sim_engine

FAST = {"step_base_s": 0.001, "step_per_request_s": 0.0, "prefill_per_token_s": 0.0}


@pytest.fixture
async def engine_url() -> AsyncIterator[str]:
    async with serve_sim_engine(SimEngineConfig(model="m", **FAST)) as url:
        yield url


async def _records(url: str) -> list[dict[str, object]]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url.removesuffix("/v1") + "/debug/requests") as r,
    ):
        body = await r.json()
    records: list[dict[str, object]] = body["requests"]
    return records


def test_count_tokens_is_deterministic_and_positive() -> None:
    assert count_tokens("") == 0
    assert count_tokens("a abcd abcde") == 1 + 1 + 2
    assert count_tokens("x " * 10) == 10


async def test_openai_client_non_streaming_chat_has_usage(engine_url: str) -> None:
    client = AsyncOpenAI(base_url=engine_url, api_key="k", max_retries=0)
    out = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello there"}], max_tokens=7
    )
    assert out.object == "chat.completion"
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None
    assert out.usage.completion_tokens == 7
    assert len(out.choices[0].message.content.split()) == 7  # type: ignore[union-attr]
    assert out.usage.prompt_tokens == count_tokens("user: hello there")
    await client.close()


async def test_openai_client_streaming_chat_includes_usage_last(engine_url: str) -> None:
    client = AsyncOpenAI(base_url=engine_url, api_key="k", max_retries=0)
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "stream please"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, usages, finish = [], [], []
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usages.append(chunk.usage)
            assert chunk.choices == []
        for choice in chunk.choices:
            texts.append(choice.delta.content or "")
            finish.append(choice.finish_reason)
    assert len([t for t in texts if t]) == 5
    assert finish[-1] == "length"
    assert len(usages) == 1
    assert usages[0].completion_tokens == 5
    await client.close()


async def test_completions_embeddings_and_models(engine_url: str) -> None:
    client = AsyncOpenAI(base_url=engine_url, api_key="k", max_retries=0)
    comp = await client.completions.create(model="m", prompt="once upon", max_tokens=3)
    assert comp.usage is not None
    assert comp.usage.completion_tokens == 3
    assert len(comp.choices[0].text.split()) == 3
    chunks = [c async for c in await client.completions.create(model="m", prompt="a", stream=True)]
    assert all(c.object == "text_completion" for c in chunks)
    emb = await client.embeddings.create(model="m", input=["a b", "c"])  # base64 by default
    emb2 = await client.embeddings.create(model="m", input="a b", encoding_format="float")
    assert len(emb.data) == 2
    assert emb.data[0].embedding == pytest.approx(emb2.data[0].embedding, rel=1e-6)
    assert emb.usage.prompt_tokens == 3
    models = await client.models.list()
    assert [m.id for m in models.data] == ["m"]
    await client.close()


async def test_output_length_is_seeded_from_prompt(engine_url: str) -> None:
    client = AsyncOpenAI(base_url=engine_url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "same prompt"}]
    a = await client.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
    b = await client.chat.completions.create(model="m", messages=msgs)  # type: ignore[arg-type]
    assert a.usage is not None and b.usage is not None
    assert a.usage.completion_tokens == b.usage.completion_tokens
    assert 8 <= a.usage.completion_tokens <= 64
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].finish_reason == "stop"
    await client.close()


async def test_errors_are_openai_shaped(engine_url: str) -> None:
    base = engine_url
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/chat/completions", data=b"{not json") as r:
            assert r.status == 400
            assert "error" in await r.json()
        body = {"model": "other", "messages": [{"role": "user", "content": "x"}]}
        async with s.post(f"{base}/chat/completions", json=body) as r:
            assert r.status == 404
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}
        async with s.post(f"{base}/chat/completions", json=body) as r:
            assert r.status == 400
        async with s.post(f"{base}/chat/completions", json={"model": "m"}) as r:
            assert r.status == 400
        fault = {"status": 503, "body": {"error": {"message": "overloaded"}}, "count": 1}
        async with s.post(base.removesuffix("/v1") + "/debug/faults", json=fault) as r:
            assert r.status == 200
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        async with s.post(f"{base}/chat/completions", json=body) as r:
            assert r.status == 503
            assert (await r.json())["error"]["message"] == "overloaded"
        async with s.post(f"{base}/chat/completions", json=body) as r:
            assert r.status == 200


async def _start_order(config: SimEngineConfig, priorities: list[int]) -> list[int]:
    """Occupy a one-slot engine, queue requests with ``priorities``, return priorities by start."""
    async with serve_sim_engine(config) as url, aiohttp.ClientSession() as s:

        async def call(priority: int, max_tokens: int) -> None:
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": f"p{priority}"}],
                "max_tokens": max_tokens,
                "priority": priority,
            }
            async with s.post(f"{url}/chat/completions", json=body) as r:
                assert r.status == 200
                await r.read()

        blocker = asyncio.create_task(call(priorities[0], 30))
        while not any(r["start_s"] for r in await _records(url)):
            await asyncio.sleep(0.001)
        tasks = []
        for p in priorities[1:]:
            tasks.append(asyncio.create_task(call(p, 2)))
            n = len(tasks) + 1
            while len(await _records(url)) < n:  # arrival order is the list order
                await asyncio.sleep(0.001)
        await asyncio.gather(blocker, *tasks)
        recs = await _records(url)
    started = sorted(recs, key=lambda r: float(r["start_s"]))  # type: ignore[arg-type]
    return [int(r["priority"]) for r in started]  # type: ignore[call-overload]


async def test_priority_scheduling_runs_lower_values_first() -> None:
    cfg = SimEngineConfig(model="m", max_batch=1, priority_scheduling=True, **FAST)
    assert await _start_order(cfg, [0, 5, 1, 3, 2]) == [0, 1, 2, 3, 5]


async def test_higher_first_mode_runs_higher_values_first() -> None:
    cfg = SimEngineConfig(
        model="m", max_batch=1, priority_scheduling=True, higher_priority_first=True, **FAST
    )
    assert await _start_order(cfg, [9, 5, 1, 3, 2]) == [9, 5, 3, 2, 1]


async def test_without_priority_scheduling_order_is_fcfs() -> None:
    cfg = SimEngineConfig(model="m", max_batch=1, **FAST)
    assert await _start_order(cfg, [0, 5, 1, 3, 2]) == [0, 5, 1, 3, 2]


async def test_better_priority_preempts_running_request() -> None:
    cfg = SimEngineConfig(model="m", max_batch=1, priority_scheduling=True, **FAST)
    async with serve_sim_engine(cfg) as url, aiohttp.ClientSession() as s:

        async def call(priority: int, max_tokens: int) -> None:
            msgs = [{"role": "user", "content": "x"}]
            body = {"model": "m", "messages": msgs, "max_tokens": max_tokens, "priority": priority}
            async with s.post(f"{url}/chat/completions", json=body) as r:
                assert (await r.json())["usage"]["completion_tokens"] == max_tokens

        low = asyncio.create_task(call(10, 200))
        while not any(r["start_s"] for r in await _records(url)):
            await asyncio.sleep(0.001)
        await call(1, 2)
        assert not low.done()  # the urgent request finished while the long one waited
        await low
        recs = {r["priority"]: r for r in await _records(url)}
    assert recs[10]["preemptions"] == 1
    assert float(recs[1]["finish_s"]) < float(recs[10]["finish_s"])  # type: ignore[arg-type]


async def test_cold_start_after_idle_then_warm() -> None:
    cfg = SimEngineConfig(model="m", cold_start_s=0.05, keep_alive_s=60, **FAST)
    async with serve_sim_engine(cfg) as url:
        client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
        for _ in range(2):
            await client.completions.create(model="m", prompt="x", max_tokens=1)
        await client.close()
        recs = await _records(url)
    assert [r["cold_start_s"] for r in recs] == [0.05, 0.0]


async def test_client_disconnect_mid_stream_aborts_request(engine_url: str) -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 10_000,
        "stream": True,
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{engine_url}/chat/completions", json=body) as r:
            line = await r.content.readline()
            assert line.startswith(b"data: ")
            json.loads(line[6:])
        for _ in range(500):
            recs = await _records(engine_url)
            if recs[0]["aborted"]:
                break
            await asyncio.sleep(0.002)
    assert recs[0]["aborted"] is True
    assert int(recs[0]["completion_tokens"]) < 10_000  # type: ignore[call-overload]


async def test_strict_priority_rejects_priority_without_scheduling() -> None:
    cfg = SimEngineConfig(model="m", strict_priority=True, **FAST)
    async with serve_sim_engine(cfg) as url, aiohttp.ClientSession() as s:
        msgs = [{"role": "user", "content": "x"}]
        for priority, status in ((3, 400), (0, 200)):
            body = {"model": "m", "messages": msgs, "max_tokens": 1, "priority": priority}
            async with s.post(f"{url}/chat/completions", json=body) as r:
                assert r.status == status


@pytest.mark.parametrize(
    ("body_input", "status"),
    [
        ([298, 17], 200),
        ([[1, 2], [3]], 200),
        (["a", "b"], 200),
        ([None], 400),
        ([298, None], 400),
        ([[1, None]], 400),
        ([], 400),
        ({"x": 1}, 400),
    ],
)
async def test_embeddings_input_forms(engine_url: str, body_input: object, status: int) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{engine_url}/embeddings", json={"model": "m", "input": body_input}) as resp,
    ):
        assert resp.status == status
        assert "error" in await resp.json() or status == 200
