"""The retention hint from the learned graph reaches the engine with each LLM call."""

from __future__ import annotations

from typing import Any, TypedDict

import aiohttp
from hermes_langgraph import HermesCallbackHandler, chat_openai_kwargs
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

import hermes_sdk as hermes
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

MODEL = "sim-model"


class Loop(TypedDict, total=False):
    q: str
    turns: int


def loop_graph(chat: ChatOpenAI) -> Any:
    """think (LLM) -> act (no LLM) -> think -> END: the second think continues the first."""

    async def think(state: Loop) -> Loop:
        await chat.ainvoke([HumanMessage("think about " + state["q"])])
        return {"turns": state.get("turns", 0) + 1}

    async def act(state: Loop) -> Loop:
        return {}

    builder = StateGraph(Loop)
    builder.add_node("think", think)
    builder.add_node("act", act)
    builder.add_edge(START, "think")
    builder.add_conditional_edges("think", lambda s: "act" if s["turns"] < 2 else END)
    builder.add_edge("act", "think")
    return builder.compile()


async def test_first_think_is_kept_and_the_last_is_not() -> None:
    config = SimEngineConfig(
        model=MODEL, step_base_s=0.0005, min_output_tokens=2, max_output_tokens=4
    )
    async with serve_sim_engine(config) as url:
        chat = ChatOpenAI(
            model=MODEL,
            base_url=url,
            api_key="sk-test",  # type: ignore[arg-type]
            max_retries=0,
            **chat_openai_kwargs(engine="vllm"),
        )
        graph = loop_graph(chat)
        handler = HermesCallbackHandler(app="retain-loop")
        for i in range(14):  # learn the loop (the hint needs 10 runs of the app)
            await graph.ainvoke({"q": f"q{i}"}, {"callbacks": [handler]})
            hermes.flush()
        async with aiohttp.ClientSession() as s:
            await s.delete(url.removesuffix("/v1") + "/debug/requests")
            await graph.ainvoke({"q": "last"}, {"callbacks": [handler]})
            async with s.get(url.removesuffix("/v1") + "/debug/requests") as r:
                records = (await r.json())["requests"]
    first, last = (rec["headers"] for rec in records)
    assert first["x-hermes-unit"] == last["x-hermes-unit"] == "think"
    assert float(first["x-hermes-retain-s"]) > 0  # the run comes back to think after act
    assert float(last["x-hermes-retain-s"]) == 0  # the run ends after this call
    assert float(first["x-hermes-remaining-llm-calls"]) == 1.0  # the second think
    assert float(last["x-hermes-remaining-llm-calls"]) == 0.0
