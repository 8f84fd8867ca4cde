"""LangChain ChatOpenAI works unchanged against the gateway (and with openai_kwargs per call)."""

from __future__ import annotations

import pytest

from hermes_sdk.client.hints import Hints
from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import StartEngine, StartGateway, engine_records

langchain_openai = pytest.importorskip("langchain_openai")


async def test_chat_openai_invoke_and_stream_with_usage(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, engine="vllm"))
    llm = langchain_openai.ChatOpenAI(
        base_url=gw.url, api_key="k", model="m", max_tokens=4, stream_usage=True, max_retries=0
    )
    reply = await llm.ainvoke("hello there")
    assert len(reply.content.split()) == 4
    assert reply.usage_metadata["output_tokens"] == 4
    chunks = [c async for c in llm.astream("hello again")]
    text = "".join(str(c.content) for c in chunks)
    assert len(text.split()) == 4
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert sum(u["output_tokens"] for u in usage) == 4
    # Per-call hints: headers reach the gateway, the client's priority is replaced by the server's.
    hints = Hints(app="qa", run_id="r1", rank_s=0.01)
    await llm.ainvoke("with hints", **openai_kwargs(hints))
    calls = list(gw.gateway.calls)
    assert [c.output_tokens for c in calls] == [4, 4, 4]
    assert calls[-1].run_id == "r1" and calls[-1].app == "qa"
    seen = await engine_records(url)
    assert seen[-1]["priority"] == calls[-1].priority != hints.engine_priority("vllm")
