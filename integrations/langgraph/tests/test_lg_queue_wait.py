"""Time an LLM call spent queued at the gateway is not learned as the node's service demand."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypedDict

import aiohttp
from aiohttp.test_utils import TestServer
from hermes_langgraph import HermesCallbackHandler, chat_openai_kwargs
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

import hermes_sdk as hermes
from hermes_sdk.server.app import create_app
from hermes_sdk.server.config import ServerConfig
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

MODEL = "sim-model"


class QA(TypedDict, total=False):
    question: str
    answer: str


def _graph(chat: ChatOpenAI) -> Any:
    async def answer(state: QA) -> QA:
        return {"answer": str((await chat.ainvoke([HumanMessage(state["question"])])).content)}

    g = StateGraph(QA)
    g.add_node("answer", answer)
    g.add_edge(START, "answer")
    g.add_edge("answer", END)
    return g.compile()


async def test_gateway_queue_wait_is_subtracted_from_the_node_service() -> None:
    engine = SimEngineConfig(model=MODEL, step_base_s=0.01, max_output_tokens=200)
    async with serve_sim_engine(engine) as engine_url:
        config = ServerConfig(
            store_url="memory://",
            upstreams=(UpstreamConfig("up", engine_url.removesuffix("/v1"), max_inflight=1),),
        )
        server = TestServer(create_app(config))
        await server.start_server()
        gateway = str(server.make_url("/v1"))
        try:
            async with aiohttp.ClientSession() as session:
                body = {
                    "model": MODEL,
                    "max_tokens": 60,  # holds the only slot for ~0.6 s
                    "messages": [{"role": "user", "content": "block"}],
                }
                blocker = asyncio.create_task(
                    session.post(f"{gateway}/chat/completions", json=body)
                )
                await asyncio.sleep(0.1)
                chat = ChatOpenAI(
                    model=MODEL,
                    base_url=gateway,
                    api_key="sk-test",  # type: ignore[arg-type]
                    max_tokens=2,  # type: ignore[call-arg]
                    max_retries=0,
                    **chat_openai_kwargs(engine="openai"),
                )
                start = time.perf_counter()
                await _graph(chat).ainvoke(
                    {"question": "q"}, config={"callbacks": [HermesCallbackHandler(app="qa")]}
                )
                wall_s = time.perf_counter() - start
                (await blocker).release()
        finally:
            await server.close()
    hermes.flush()
    stats = hermes.graph("qa").node_stats("answer")
    service_s = stats.service_s.mean()
    assert wall_s > 0.3  # it really queued behind the blocker
    assert service_s < wall_s / 2  # ...and the queueing was not learned as demand
