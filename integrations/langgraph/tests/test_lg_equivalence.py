"""The same app instrumented with decorators and with the callback learns the same PDGraph.

The mapping (also in the package README): graph invocation = ``hermes.run(app)``; node task =
``@hermes.unit(name=node)``; chat model call = nested ``@hermes.llm(name=<model class>,
backend=<model name>)``; tool call = nested ``@hermes.tool(name=<tool>)``; ``Send`` fan-out =
concurrent units; subgraph = ``hermes.run(f"{app}/{node}")`` inside the node's unit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from hermes_langgraph import HermesCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from lg_apps import (
    ScriptedChatModel,
    map_reduce_graph,
    react_graph,
    react_input,
    search,
    subgraph_graph,
)

import hermes_sdk as hermes
import hermes_sdk.instrument as hi
from hermes_sdk.graph.pdgraph import PDGraph


def assert_equivalent(a: PDGraph, b: PDGraph) -> None:
    """Same structure and same token/width distributions (service seconds are wall-clock)."""
    assert a.runs == b.runs
    assert {k: dict(v) for k, v in a.transitions.items()} == {
        k: dict(v) for k, v in b.transitions.items()
    }
    assert set(a.nodes) == set(b.nodes)
    for node in a.nodes:
        sa, sb = a.node_stats(node), b.node_stats(node)
        assert (sa.kind, sa.backend, sa.count, sa.calls) == (
            sb.kind,
            sb.backend,
            sb.count,
            sb.calls,
        )
        for field in ("input_tokens", "output_tokens", "width"):
            np.testing.assert_array_equal(getattr(sa, field).values, getattr(sb, field).values)


ROUNDS = [0, 1, 3, 2, 1]


def test_react_decorators_and_callback_learn_the_same_graph() -> None:
    handler = HermesCallbackHandler(app="react-cb")
    graph = react_graph()
    for r in ROUNDS:
        graph.invoke(react_input(r), config={"callbacks": [handler]})

    model = ScriptedChatModel()

    @hermes.llm(name="ScriptedChatModel", backend="scripted-1")
    def call_model(messages: list[BaseMessage]) -> AIMessage:
        reply = model.invoke(messages)
        assert isinstance(reply, AIMessage)
        return reply

    @hermes.tool(name="search")
    def call_tool(q: str) -> str:
        return str(search.invoke(q))

    @hermes.unit(name="agent")
    def agent(messages: list[BaseMessage]) -> AIMessage:
        return call_model(messages)

    @hermes.unit(name="tools", kind="tool")  # the callback infers `tool`
    def tools(message: AIMessage) -> list[BaseMessage]:
        return [
            ToolMessage(call_tool(c["args"]["q"]), tool_call_id=c["id"] or "")
            for c in message.tool_calls
        ]

    for r in ROUNDS:
        with hermes.run("react-deco"):
            messages: list[BaseMessage] = [HumanMessage(f"rounds={r} width=1")]
            while True:
                reply = agent(messages)
                messages.append(reply)
                if not reply.tool_calls:
                    break
                messages.extend(tools(reply))
        assert reply.content == f"answer after {r}"
    assert_equivalent(hi.graph("react-cb"), hi.graph("react-deco"))


WIDTHS = [3, 1, 4, 2]


async def test_map_reduce_decorators_and_callback_learn_the_same_graph() -> None:
    handler = HermesCallbackHandler(app="mr-cb")
    graph = map_reduce_graph(ScriptedChatModel(delay_s=0.001))
    for w in WIDTHS:
        await graph.ainvoke({"width": w, "summaries": []}, config={"callbacks": [handler]})

    model = ScriptedChatModel(delay_s=0.001)

    @hermes.llm(name="ScriptedChatModel", backend="scripted-1")
    async def call_model(messages: list[BaseMessage]) -> AIMessage:
        reply = await model.ainvoke(messages)
        assert isinstance(reply, AIMessage)
        return reply

    @hermes.unit(name="plan")
    def plan(width: int) -> list[str]:
        return [f"part {i}" for i in range(width)]

    @hermes.unit(name="summarise")
    async def summarise(topic: str) -> str:
        return str((await call_model([HumanMessage(f"summarise {topic}")])).content)

    @hermes.unit(name="combine")
    def combine(parts: list[str]) -> str:
        return " / ".join(sorted(parts))

    for w in WIDTHS:
        async with hermes.run("mr-deco"):
            combine(list(await asyncio.gather(*(summarise(t) for t in plan(w)))))
    assert_equivalent(hi.graph("mr-cb"), hi.graph("mr-deco"))


def test_subgraph_decorators_and_callback_learn_the_same_graphs() -> None:
    handler = HermesCallbackHandler(app="sub-cb")
    graph = subgraph_graph()
    for _ in range(2):
        graph.invoke({"question": "q", "drafts": 0, "answer": ""}, {"callbacks": [handler]})

    model = ScriptedChatModel()

    @hermes.llm(name="ScriptedChatModel", backend="scripted-1")
    def call_model(messages: list[BaseMessage]) -> Any:
        return model.invoke(messages)

    @hermes.unit(name="draft")
    def draft(question: str) -> None:
        call_model([HumanMessage(f"draft {question}")])

    @hermes.unit(name="check")
    def check() -> None:
        return None

    @hermes.unit(name="research")
    def research(question: str) -> None:
        with hermes.run("sub-deco/research"):
            for _ in range(2):
                draft(question)
                check()

    for _ in range(2):
        with hermes.run("sub-deco"):
            hermes.unit(name="prepare")(lambda: None)()
            research("q")
            hermes.unit(name="publish")(lambda: None)()
    assert_equivalent(hi.graph("sub-cb/research"), hi.graph("sub-deco/research"))
    cb, deco = hi.graph("sub-cb"), hi.graph("sub-deco")
    assert {k: dict(v) for k, v in cb.transitions.items()} == {
        k: dict(v) for k, v in deco.transitions.items()
    }
    for field in ("input_tokens", "output_tokens"):
        np.testing.assert_array_equal(
            getattr(cb.node_stats("research"), field).values,
            getattr(deco.node_stats("research"), field).values,
        )
