"""Real LangGraph apps traced by HermesCallbackHandler produce the expected PDGraphs."""

from __future__ import annotations

from collections import Counter
from typing import Any, TypedDict

import pytest
from hermes_langgraph import HermesCallbackHandler
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from lg_apps import (
    OUTPUT_TOKENS,
    TOKENS_PER_MESSAGE,
    interrupt_graph,
    map_reduce_graph,
    react_graph,
    react_input,
    subgraph_graph,
)

import hermes_sdk.instrument as hi
from hermes_sdk.graph.records import RunPath


def nodes_of(path: RunPath) -> list[str]:
    return [s.node for s in path.stages]


def transitions(app: str) -> dict[tuple[str, int], dict[str, int]]:
    graph = hi.graph(app)
    return {key: dict(counts) for key, counts in graph.transitions.items()}


def test_react_loop_learns_visit_indexed_edges() -> None:
    handler = HermesCallbackHandler(app="react")
    graph = react_graph()
    rounds = [0, 1, 2, 2, 3]
    for r in rounds:
        out = graph.invoke(react_input(r), config={"callbacks": [handler]})
        assert out["messages"][-1].content == f"answer after {r}"
    paths = list(handler.recent_paths)
    assert [nodes_of(p) for p in paths] == [["agent"] + ["tools", "agent"] * r for r in rounds]
    assert handler.errors == 0 and handler.open_runs == 0
    assert transitions("react") == {
        ("START", 1): {"agent": 5},
        ("agent", 1): {"tools": 4, "END": 1},
        ("agent", 2): {"tools": 3, "END": 1},
        ("agent", 3): {"tools": 1, "END": 2},
        ("agent", 4): {"END": 1},
        ("tools", 1): {"agent": 4},
        ("tools", 2): {"agent": 3},
        ("tools", 3): {"agent": 1},
    }
    agent = hi.graph("react").node_stats("agent")
    assert agent.kind == "llm" and agent.backend == "scripted-1"
    # the agent's k-th call sees 2k-1 messages (human, then AI + tool per round)
    third = paths[-1]
    agent_inputs = [s.calls[0].input_tokens for s in third.stages if s.node == "agent"]
    assert agent_inputs == [TOKENS_PER_MESSAGE * (2 * k + 1) for k in range(4)]
    assert {s.calls[0].output_tokens for s in third.stages if s.node == "agent"} == {OUTPUT_TOKENS}
    # like a decorated @hermes.unit node: only a nested LLM call lends the node its kind
    assert hi.graph("react").node_stats("tools").kind == "tool"  # only tool calls inside


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_prebuilt_react_agent_tool_fan_out_is_one_wide_stage() -> None:
    from langgraph.prebuilt import create_react_agent
    from lg_apps import ScriptedChatModel, search

    agent = create_react_agent(ScriptedChatModel(), [search])
    handler = HermesCallbackHandler(app="prebuilt")
    agent.invoke(react_input(2, width=3), config={"callbacks": [handler]})
    (path,) = handler.recent_paths
    assert [(s.node, s.width) for s in path.stages] == [
        ("agent", 1),
        ("tools", 3),
        ("agent", 1),
        ("tools", 3),
        ("agent", 1),
    ]


def test_map_reduce_send_fan_out_widths() -> None:
    handler = HermesCallbackHandler(app="map-reduce")
    graph = map_reduce_graph()
    widths = [2, 3, 4, 1]
    for w in widths:
        out = graph.invoke({"width": w, "summaries": []}, config={"callbacks": [handler]})
        assert len(out["summaries"]) == w
    for path, w in zip(handler.recent_paths, widths, strict=True):
        assert [(s.node, s.width) for s in path.stages] == [
            ("plan", 1),
            ("summarise", w),
            ("combine", 1),
        ]
        fan = path.stages[1]
        assert all(c.input_tokens == TOKENS_PER_MESSAGE for c in fan.calls)
        assert all(c.output_tokens == OUTPUT_TOKENS for c in fan.calls)
    stats = hi.graph("map-reduce").node_stats("summarise")
    assert sorted(stats.width.values.tolist()) == sorted(widths)
    assert stats.calls == sum(widths) and stats.kind == "llm"
    assert transitions("map-reduce") == {
        ("START", 1): {"plan": 4},
        ("plan", 1): {"summarise": 4},
        ("summarise", 1): {"combine": 4},
        ("combine", 1): {"END": 4},
    }


async def test_send_fan_out_executed_sequentially_is_still_one_stage() -> None:
    """Async nodes that never await run one after another; the superstep is still one stage."""

    class S(TypedDict):
        n: int
        hits: list[int]

    def work(state: S) -> dict[str, object]:
        return {}

    async def awork(state: S) -> dict[str, object]:
        return {}

    from langchain_core.runnables import RunnableLambda
    from langgraph.types import Send

    builder = StateGraph(S)
    builder.add_node("start", lambda s: {})
    builder.add_node("work", RunnableLambda(work, afunc=awork))
    builder.add_node("after", lambda s: {})
    builder.add_edge(START, "start")
    builder.add_conditional_edges(
        "start", lambda s: [Send("work", {"n": i, "hits": []}) for i in range(s["n"])], ["work"]
    )
    builder.add_edge("work", "after")
    builder.add_edge("after", END)
    graph = builder.compile()
    handler = HermesCallbackHandler(app="sequential")
    await graph.ainvoke({"n": 5, "hits": []}, config={"callbacks": [handler]})
    graph.invoke({"n": 4, "hits": []}, config={"callbacks": [handler], "max_concurrency": 1})
    assert [[(s.node, s.width) for s in p.stages] for p in handler.recent_paths] == [
        [("start", 1), ("work", 5), ("after", 1)],
        [("start", 1), ("work", 4), ("after", 1)],
    ]


def test_subgraph_becomes_a_sub_run_with_tokens_rolled_up() -> None:
    handler = HermesCallbackHandler(app="doc")
    graph = subgraph_graph()
    for _ in range(3):
        out = graph.invoke({"question": "q", "drafts": 0, "answer": ""}, {"callbacks": [handler]})
        assert out["drafts"] == 2
    paths = list(handler.recent_paths)
    assert [nodes_of(p) for p in paths] == [["prepare", "research", "publish"]] * 3
    research = paths[0].stages[1]
    assert research.calls[0].input_tokens == 2 * TOKENS_PER_MESSAGE
    assert research.calls[0].output_tokens == 2 * OUTPUT_TOKENS
    assert transitions("doc/research") == {
        ("START", 1): {"draft": 3},
        ("draft", 1): {"check": 3},
        ("draft", 2): {"check": 3},
        ("check", 1): {"draft": 3},
        ("check", 2): {"END": 3},
    }
    assert hi.graph("doc").runs == 3 and hi.graph("doc/research").runs == 3
    assert handler.open_runs == 0 and handler._tracker.open_entries == 0


def test_subgraph_called_inside_a_node_function_is_a_sub_run_too() -> None:
    inner = subgraph_graph()

    class S(TypedDict):
        question: str
        drafts: int
        answer: str

    def delegate(state: S) -> dict[str, object]:
        return dict(inner.invoke(state))

    builder = StateGraph(S)
    builder.add_node("delegate", delegate)
    builder.add_edge(START, "delegate")
    builder.add_edge("delegate", END)
    handler = HermesCallbackHandler(app="outer")
    builder.compile().invoke({"question": "q", "drafts": 0, "answer": ""}, {"callbacks": [handler]})
    (path,) = handler.recent_paths
    assert nodes_of(path) == ["delegate"]
    assert path.stages[0].calls[0].input_tokens == 2 * TOKENS_PER_MESSAGE
    assert hi.graph("outer/delegate").runs == 1
    assert set(hi.graph("outer/delegate").nodes) == {"prepare", "research", "publish"}
    assert set(hi.graph("outer/delegate/research").nodes) == {"draft", "check"}


def test_human_interrupt_is_not_a_failure() -> None:
    handler = HermesCallbackHandler(app="review")
    graph = interrupt_graph()
    for i in range(3):
        cfg: Any = {"configurable": {"thread_id": f"t{i}"}, "callbacks": [handler]}
        first = graph.invoke({"draft": "", "verdict": ""}, cfg)
        assert "__interrupt__" in first
        done = graph.invoke(Command(resume="ok"), cfg)
        assert done["draft"] == "text (ok)"
    paths = list(handler.recent_paths)  # one run per thread (tests/test_lg_interrupts.py)
    assert [nodes_of(p) for p in paths] == [["write", "review", "publish"]] * 3
    assert not any(p.failed for p in paths)
    assert not any(c.failed for p in paths for s in p.stages for c in s.calls)
    assert transitions("review") == {
        ("START", 1): {"write": 3},
        ("write", 1): {"review": 3},
        ("review", 1): {"publish": 3},
        ("publish", 1): {"END": 3},
    }


def test_failing_node_fails_the_run_and_error_passes_through() -> None:
    class S(TypedDict):
        x: int

    def boom(state: S) -> dict[str, int]:
        raise KeyError("boom")

    builder = StateGraph(S)
    builder.add_node("ok", lambda s: {"x": 1})
    builder.add_node("boom", boom)
    builder.add_edge(START, "ok")
    builder.add_edge("ok", "boom")
    builder.add_edge("boom", END)
    handler = HermesCallbackHandler(app="failing")
    with pytest.raises(KeyError, match="boom"):
        builder.compile().invoke({"x": 0}, {"callbacks": [handler]})
    (path,) = handler.recent_paths
    assert path.failed and nodes_of(path) == ["ok", "boom"]
    assert path.stages[1].calls[0].failed and not path.stages[0].calls[0].failed
    assert handler.errors == 0 and handler.open_runs == 0


def _method_paths(kind: str) -> list[str]:
    handler = HermesCallbackHandler(app=f"method-{kind}")
    graph = react_graph()
    cfg: Any = {"callbacks": [handler]}
    if kind == "invoke":
        graph.invoke(react_input(2), cfg)
    elif kind == "stream":
        for _ in graph.stream(react_input(2), cfg, stream_mode="updates"):
            pass
    elif kind == "batch":
        graph.batch([react_input(2)], cfg)
    (path,) = handler.recent_paths
    return nodes_of(path)


async def _amethod_paths(kind: str) -> list[str]:
    handler = HermesCallbackHandler(app=f"method-{kind}")
    graph = react_graph()
    cfg: Any = {"callbacks": [handler]}
    if kind == "ainvoke":
        await graph.ainvoke(react_input(2), cfg)
    elif kind == "astream":
        async for _ in graph.astream(react_input(2), cfg, stream_mode=["updates", "messages"]):
            pass
    elif kind == "astream_events":
        async for _ in graph.astream_events(react_input(2), cfg, version="v2"):
            pass
    (path,) = handler.recent_paths
    return nodes_of(path)


EXPECTED_REACT_2 = ["agent", "tools", "agent", "tools", "agent"]


@pytest.mark.parametrize("kind", ["invoke", "stream", "batch"])
def test_every_sync_entry_point_gives_the_same_path(kind: str) -> None:
    assert _method_paths(kind) == EXPECTED_REACT_2


@pytest.mark.parametrize("kind", ["ainvoke", "astream", "astream_events"])
async def test_every_async_entry_point_gives_the_same_path(kind: str) -> None:
    assert await _amethod_paths(kind) == EXPECTED_REACT_2


def test_plain_chain_without_graph_records_its_llm_calls() -> None:
    from lg_apps import ScriptedChatModel

    handler = HermesCallbackHandler(app="bare-model")
    ScriptedChatModel().invoke("hello", config={"callbacks": [handler]})
    (path,) = handler.recent_paths
    assert [(s.node, s.kind, s.backend) for s in path.stages] == [
        ("ScriptedChatModel", "llm", "scripted-1")
    ]
    assert Counter(hi.graph("bare-model").transitions[("START", 1)]) == {"ScriptedChatModel": 1}


def test_retried_node_is_one_call_not_a_wider_stage() -> None:
    from langgraph.types import RetryPolicy, Send

    class S(TypedDict):
        n: int

    attempts: dict[int, int] = {}

    def work(state: S) -> dict[str, object]:
        attempts[state["n"]] = attempts.get(state["n"], 0) + 1
        if state["n"] == 1 and attempts[1] < 3:  # one branch of the fan-out fails twice
            raise ConnectionError("transient")
        return {}

    builder = StateGraph(S)
    builder.add_node("fan", lambda s: {})
    builder.add_node(
        "work",
        work,
        retry_policy=RetryPolicy(max_attempts=4, initial_interval=0.001, jitter=False),
    )
    builder.add_edge(START, "fan")
    builder.add_conditional_edges("fan", lambda s: [Send("work", {"n": i}) for i in range(3)])
    builder.add_edge("work", END)
    handler = HermesCallbackHandler(app="retries")
    builder.compile().invoke({"n": 0}, {"callbacks": [handler]})
    assert attempts == {0: 1, 1: 3, 2: 1}
    (path,) = handler.recent_paths
    assert [(s.node, s.width) for s in path.stages] == [("fan", 1), ("work", 3)]
    assert not path.failed and not any(c.failed for c in path.stages[1].calls)


def test_hermes_run_id_is_the_langchain_run_id() -> None:
    from uuid import uuid4

    handler = HermesCallbackHandler(app="ids")
    rid = uuid4()
    subgraph_graph().invoke(
        {"question": "q", "drafts": 0, "answer": ""}, {"callbacks": [handler], "run_id": rid}
    )
    (path,) = handler.recent_paths
    assert path.run_id == str(rid)  # the id LangSmith shows for the same invocation


async def test_abandoned_streams_end_their_runs_as_failed() -> None:
    handler = HermesCallbackHandler(app="abandoned")
    graph = react_graph()
    for _ in graph.stream(react_input(3), {"callbacks": [handler]}):
        break
    stream = graph.astream(react_input(3), {"callbacks": [handler]})
    async for _ in stream:
        break
    await stream.aclose()
    assert [(p.failed, nodes_of(p)) for p in handler.recent_paths] == [(True, ["agent"])] * 2
    assert handler.open_runs == 0 and handler._tracker.open_entries == 0
    handler.close()  # nothing left to end
    assert handler.errors == 0 and len(handler.recent_paths) == 2
