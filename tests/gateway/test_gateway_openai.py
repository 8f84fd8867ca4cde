"""The official openai client works unchanged with base_url = gateway, streaming and not."""

from __future__ import annotations

import aiohttp
from openai import AsyncOpenAI

from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import StartEngine, StartGateway, engine_records


async def test_non_streaming_chat_passes_through_with_usage(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    gw = await gateway(UpstreamConfig("up", await engine(), engine="vllm"))
    client = AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0)
    out = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello world"}], max_tokens=6
    )
    await client.close()
    assert out.usage is not None
    assert out.usage.completion_tokens == 6
    assert len((out.choices[0].message.content or "").split()) == 6
    (call,) = gw.gateway.calls
    assert (call.input_tokens, call.output_tokens) == (out.usage.prompt_tokens, 6)
    assert call.status == 200 and not call.failed
    assert call.priority == 32  # no run: the middle level (vLLM's default 0 would jump ahead)
    (seen,) = await engine_records(gw.gateway.router.upstreams[0].base_url)
    assert seen["priority"] == 32
    await gw.wait_inflight("up", 0)


async def test_streaming_chat_relays_chunks_and_usage(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    gw = await gateway(UpstreamConfig("up", await engine()))
    client = AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0)
    msgs = [{"role": "user", "content": "count"}]
    stream = await client.chat.completions.create(
        model="m",
        messages=msgs,  # type: ignore[arg-type]
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 4
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) == 4
    # Without include_usage the client sees no usage-only chunk, but the gateway still counts.
    stream = await client.chat.completions.create(
        model="m",
        messages=msgs,  # type: ignore[arg-type]
        max_tokens=3,
        stream=True,
    )
    chunks = [c async for c in stream]
    await client.close()
    assert all(c.choices for c in chunks)
    assert [c.output_tokens for c in gw.gateway.calls] == [4, 3]
    (_, seen) = await engine_records(gw.gateway.router.upstreams[0].base_url)
    assert seen["completion_tokens"] == 3
    await gw.wait_inflight("up", 0)


async def test_completions_embeddings_models(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    gw = await gateway(UpstreamConfig("up", await engine()))
    client = AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0)
    comp = await client.completions.create(model="m", prompt="a b c", max_tokens=2)
    assert comp.usage is not None and comp.usage.completion_tokens == 2
    streamed = [
        c async for c in await client.completions.create(model="m", prompt="x", stream=True)
    ]
    assert streamed and all(c.object == "text_completion" for c in streamed)
    emb = await client.embeddings.create(model="m", input=["one", "two"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 16
    assert [m.id for m in (await client.models.list()).data] == ["m"]
    await client.close()
    assert [c.endpoint for c in gw.gateway.calls] == [
        "completions",
        "completions",
        "embeddings",
    ]


async def test_hermes_api_key_is_not_forwarded(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, api_key="upstream-secret"))
    body = {"model": "m", "prompt": "x", "max_tokens": 1}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/completions", json=body, headers={"Authorization": "Bearer mine"}) as r,
    ):
        assert r.status == 200
    assert "upstream-secret" not in repr(gw.gateway.router.upstreams[0])
    (seen,) = await engine_records(url)
    assert seen["headers"] == {"authorization": "Bearer upstream-secret"}


async def test_gateway_metrics_are_exported(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    gw = await gateway(UpstreamConfig("up", await engine()))
    client = AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0)
    await client.completions.create(model="m", prompt="a b", max_tokens=5)
    await client.close()
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url.removesuffix("/v1") + "/metrics") as r,
    ):
        text = await r.text()
    assert 'hermes_gateway_requests_total{status="200",upstream="up"} 1.0' in text
    assert 'hermes_gateway_tokens_total{kind="completion",upstream="up"} 5.0' in text
    assert 'hermes_gateway_upstream_seconds_count{upstream="up"} 1.0' in text
