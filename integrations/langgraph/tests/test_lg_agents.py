"""LangChain v1 agents (``create_agent`` with middleware and a human approval step) and
``Command`` routing into a compiled subgraph, traced by the callback (real LangChain/LangGraph)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from hermes_langgraph import HermesCallbackHandler
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware, ModelCallLimitMiddleware
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from lg_apps import ScriptedChatModel, react_input, search

import hermes_sdk.instrument as hi
from hermes_sdk.graph.records import RunPath

HITL = "HumanInTheLoopMiddleware.after_model"
APPROVE: Any = {"decisions": [{"type": "approve"}]}


def nodes_of(path: RunPath) -> list[str]:
    return [s.node for s in path.stages]


def test_create_agent_with_middleware_learns_the_tool_loop() -> None:
    agent = create_agent(
        ScriptedChatModel(), tools=[search], middleware=[ModelCallLimitMiddleware(run_limit=9)]
    )
    handler = HermesCallbackHandler(app="agent-v1")
    for rounds in (1, 2):
        out = agent.invoke(react_input(rounds), {"callbacks": [handler]})
        assert out["messages"][-1].content == f"answer after {rounds}"
    paths = list(handler.recent_paths)
    assert [[n for n in nodes_of(p) if "Middleware" not in n] for p in paths] == [
        ["model", "tools", "model"],
        ["model", "tools", "model", "tools", "model"],
    ]
    kinds = {s.node: s.kind for p in paths for s in p.stages}
    assert kinds["model"] == "llm" and kinds["tools"] == "tool"
    assert handler.errors == 0


def test_create_agent_with_a_human_approval_step_is_one_run_per_thread() -> None:
    agent = create_agent(
        ScriptedChatModel(),
        tools=[search],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"search": True})],
        checkpointer=InMemorySaver(),
    )
    handler = HermesCallbackHandler(app="agent-approve")
    threads = ["a", "b", "c"]
    for thread in threads:
        cfg: Any = {"configurable": {"thread_id": thread}, "callbacks": [handler]}
        out = agent.invoke(react_input(2), cfg)
        while "__interrupt__" in out:  # one approval per tool call
            (pending,) = out["__interrupt__"]
            assert pending.value["action_requests"][0]["name"] == "search"
            out = agent.invoke(Command(resume=APPROVE), cfg)
        assert out["messages"][-1].content == "answer after 2"
    paths = list(handler.recent_paths)
    assert len(paths) == len(threads)  # runs == threads, across two approvals each
    expected = ["model", HITL, "tools", "model", HITL, "tools", "model", HITL]
    assert all(nodes_of(p) == expected for p in paths)
    assert all(p.paused_s > 0.0 and not p.failed for p in paths)
    graph = hi.graph("agent-approve")
    assert graph.runs == len(threads)
    assert dict(graph.transitions[("START", 1)]) == {"model": len(threads)}
    assert dict(graph.transitions[(HITL, 1)]) == {"tools": len(threads)}
    assert handler.errors == 0


class RouteState(TypedDict):
    """State of the Command-routing app."""

    question: str
    drafts: int
    answer: str


def test_command_goto_routes_into_a_compiled_subgraph() -> None:
    def draft(state: RouteState) -> dict[str, object]:
        return {"drafts": state["drafts"] + 1, "answer": "draft"}

    inner = StateGraph(RouteState)
    inner.add_node("draft", draft)
    inner.add_edge(START, "draft")
    inner.add_edge("draft", END)

    def route(state: RouteState) -> Command[Literal["research", "reply"]]:
        return Command(goto="research" if state["question"] == "hard" else "reply")

    outer = StateGraph(RouteState)
    outer.add_node("route", route)
    outer.add_node("research", inner.compile())
    outer.add_node("reply", lambda s: {"answer": "easy"})
    outer.add_edge(START, "route")
    outer.add_edge("research", END)
    outer.add_edge("reply", END)
    graph = outer.compile()
    handler = HermesCallbackHandler(app="router")
    for question in ("hard", "easy", "hard"):
        for _ in graph.stream(
            {"question": question, "drafts": 0, "answer": ""},
            {"callbacks": [handler]},
            stream_mode="updates",
        ):
            pass
    assert [nodes_of(p) for p in handler.recent_paths] == [
        ["route", "research"],
        ["route", "reply"],
        ["route", "research"],
    ]
    assert dict(hi.graph("router").transitions[("route", 1)]) == {"research": 2, "reply": 1}
    assert set(hi.graph("router/research").nodes) == {"draft"}
