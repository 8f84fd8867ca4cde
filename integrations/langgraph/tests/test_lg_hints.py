"""ChatOpenAI inside a traced graph sends each call's hints to a real (simulated) engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import aiohttp
import pytest
from hermes_langgraph import HermesCallbackHandler, chat_openai_kwargs, current_hints
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

from hermes_sdk.client.hints import rank_to_priority
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

MODEL = "sim-model"


class QA(TypedDict):
    question: str
    draft: str
    answer: str


def qa_graph(chat: ChatOpenAI) -> Any:
    """draft -> refine, each one ChatOpenAI call (sync and async paths both defined)."""
    from langchain_core.runnables import RunnableLambda

    def node(prompt: str, key: str) -> RunnableLambda[QA, dict[str, str]]:
        def sync(state: QA) -> dict[str, str]:
            return {key: str(chat.invoke([HumanMessage(prompt + state["question"])]).content)}

        async def run_async(state: QA) -> dict[str, str]:
            msg = await chat.ainvoke([HumanMessage(prompt + state["question"])])
            return {key: str(msg.content)}

        return RunnableLambda(sync, afunc=run_async)

    builder = StateGraph(QA)
    builder.add_node("draft", node("draft an answer to ", "draft"))
    builder.add_node("refine", node("refine the answer to ", "answer"))
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "refine")
    builder.add_edge("refine", END)
    return builder.compile()


@pytest.fixture
async def engine_url() -> AsyncIterator[str]:
    config = SimEngineConfig(model=MODEL, step_base_s=0.0005, max_output_tokens=12)
    async with serve_sim_engine(config) as url:
        yield url


async def engine_requests(url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url.removesuffix("/v1") + "/debug/requests") as resp,
    ):
        return list((await resp.json())["requests"])


def chat_model(url: str, **extra: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL,
        base_url=url,
        api_key="sk-test",  # type: ignore[arg-type]
        max_retries=0,
        **chat_openai_kwargs(engine="vllm"),
        **extra,
    )


def check_requests(records: list[dict[str, Any]], handler: HermesCallbackHandler) -> None:
    paths = list(handler.recent_paths)
    assert len(records) == 2 * len(paths)
    by_run: dict[str, list[str]] = {}
    for rec in records:
        headers = rec["headers"]
        assert headers["x-hermes-app"] == handler.app
        assert headers["x-hermes-kind"] == "llm"
        rank = headers.get("x-hermes-rank")
        expected = rank_to_priority(float(rank) if rank else None, "vllm")
        assert rec["priority"] == expected
        by_run.setdefault(headers["x-hermes-run"], []).append(headers["x-hermes-unit"])
    assert by_run == {p.run_id: ["draft", "refine"] for p in paths}
    for path in paths:
        assert [(s.node, s.kind, s.backend) for s in path.stages] == [
            ("draft", "llm", MODEL),
            ("refine", "llm", MODEL),
        ]
        for stage in path.stages:
            (call,) = stage.calls
            assert call.input_tokens and call.output_tokens  # usage reported by the engine


async def test_async_graph_sends_hints_to_the_engine(engine_url: str) -> None:
    handler = HermesCallbackHandler(app="qa-async", deadline_s=30.0)
    graph = qa_graph(chat_model(engine_url))
    outs = await asyncio.gather(
        *(graph.ainvoke({"question": f"q{i}"}, {"callbacks": [handler]}) for i in range(3))
    )
    assert all(o["answer"] for o in outs)
    records = await engine_requests(engine_url)
    check_requests(records, handler)
    assert {r["headers"]["x-hermes-deadline"] for r in records} == {"30"}


async def test_sync_graph_sends_hints_to_the_engine(engine_url: str) -> None:
    handler = HermesCallbackHandler(app="qa-sync")
    graph = qa_graph(chat_model(engine_url))
    for i in range(2):
        # the engine runs on this event loop, so the blocking invoke runs in a thread
        await asyncio.to_thread(graph.invoke, {"question": f"q{i}"}, {"callbacks": [handler]})
    check_requests(await engine_requests(engine_url), handler)


async def test_streaming_graph_sends_hints_and_counts_tokens(engine_url: str) -> None:
    handler = HermesCallbackHandler(app="qa-stream")
    graph = qa_graph(chat_model(engine_url, streaming=True, stream_usage=True))
    chunks = 0
    async for _ in graph.astream(
        {"question": "q"}, {"callbacks": [handler]}, stream_mode="messages"
    ):
        chunks += 1
    assert chunks > 2
    check_requests(await engine_requests(engine_url), handler)


async def test_no_hints_outside_a_traced_graph(engine_url: str) -> None:
    assert current_hints() is None
    await chat_model(engine_url).ainvoke("hello")
    (record,) = await engine_requests(engine_url)
    assert not any(k.startswith("x-hermes-") for k in record["headers"])
    assert record["priority"] == 0  # body untouched
