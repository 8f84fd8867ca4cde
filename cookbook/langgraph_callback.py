"""Recipe: a LangGraph app learns its demand graph from one callback and sends hints to the engine.

No decorators and no code changes in the graph: pass ``HermesCallbackHandler`` in the config,
and build the chat model with ``chat_openai_kwargs()`` so every request it sends inside a graph
run carries the run's scheduling hints (``X-Hermes-*`` headers, read by the Hermes gateway) and
the engine-native ``priority`` (vLLM: lower first). The engine here is Hermes' simulated
OpenAI-compatible server on loopback, standing in for your vLLM/SGLang deployment.

The app is a small research assistant:

    plan --Send x k--> research (one LLM call per sub-question, in parallel) --> write
         <-- revise <-- critique (loops until the draft passes, at most 3 times)

After a few invocations the learned PDGraph shows the fan-out widths of ``research``, the
visit-indexed loop ``write -> critique -> revise -> write`` and each node's token demand.

Run: ``.venv/bin/python cookbook/langgraph_callback.py [--invokes 12]``.
Needs: ``pip install hermes-langgraph langchain-openai`` (already in the dev environment).
For a shared scheduler, replace ``configure(store=...)`` by
``configure(scheduler_url="http://127.0.0.1:8700", api_key=...)`` (see ``hermes serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import operator
from typing import Annotated, TypedDict

import aiohttp
from hermes_langgraph import HermesCallbackHandler, chat_openai_kwargs
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

import hermes_sdk as hermes
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

APP = "research-assistant"
MODEL = "sim-model"


class Research(TypedDict):
    """The graph state: a question, its sub-questions' notes, the draft and its revisions."""

    question: str
    sub_questions: int
    notes: Annotated[list[str], operator.add]
    draft: str
    revisions: int


class SubQuestion(TypedDict):
    """What one ``Send`` to ``research`` carries."""

    question: str
    index: int


def build_graph(llm: ChatOpenAI) -> object:
    """The research assistant above, as a compiled LangGraph graph."""

    async def plan(state: Research) -> dict[str, object]:
        return {"notes": [], "revisions": 0}

    def fan_out(state: Research) -> list[Send]:
        return [
            Send("research", {"question": state["question"], "index": i})
            for i in range(state["sub_questions"])
        ]

    async def research(task: SubQuestion) -> dict[str, list[str]]:
        prompt = f"Find facts for part {task['index']} of: {task['question']}"
        reply = await llm.ainvoke([HumanMessage(prompt)], max_tokens=24)
        return {"notes": [str(reply.content)]}

    async def write(state: Research) -> dict[str, str]:
        notes = "\n".join(state["notes"])
        reply = await llm.ainvoke([HumanMessage(f"Write an answer from:\n{notes}")], max_tokens=48)
        return {"draft": str(reply.content)}

    async def critique(state: Research) -> dict[str, object]:
        await llm.ainvoke([HumanMessage(f"Critique:\n{state['draft']}")], max_tokens=8)
        return {}

    def verdict(state: Research) -> str:
        # deterministic stand-in for "the critic is satisfied": longer questions need more work
        wanted = len(state["question"]) % 3
        return "revise" if state["revisions"] < wanted else END

    async def revise(state: Research) -> dict[str, int]:
        return {"revisions": state["revisions"] + 1}

    builder = StateGraph(Research)
    builder.add_node("plan", plan)
    builder.add_node("research", research)
    builder.add_node("write", write)
    builder.add_node("critique", critique)
    builder.add_node("revise", revise)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["research"])
    builder.add_edge("research", "write")
    builder.add_edge("write", "critique")
    builder.add_conditional_edges("critique", verdict, ["revise", END])
    builder.add_edge("revise", "write")
    return builder.compile()


async def engine_requests(base_url: str) -> list[dict[str, object]]:
    """What the simulated engine received (its debug endpoint)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url.removesuffix("/v1") + "/debug/requests") as resp,
    ):
        return list((await resp.json())["requests"])


async def main(invokes: int) -> None:
    hermes.configure(store="memory://")  # embedded: learn in this process, no service needed
    engine = SimEngineConfig(model=MODEL, priority_scheduling=True, max_output_tokens=48)
    async with serve_sim_engine(engine) as base_url:
        llm = ChatOpenAI(
            model=MODEL,
            base_url=base_url,
            api_key="not-needed",  # type: ignore[arg-type]
            **chat_openai_kwargs(engine="vllm"),
        )
        graph = build_graph(llm)
        handler = HermesCallbackHandler(app=APP, deadline_s=30.0)  # <- the whole integration
        questions = [f"Question {i}: {'why ' * (i % 4)}does it rain?" for i in range(invokes)]
        # several invocations share one handler, concurrently
        for start in range(0, invokes, 4):
            batch = questions[start : start + 4]
            await asyncio.gather(
                *(
                    graph.ainvoke(  # type: ignore[attr-defined]
                        {"question": q, "sub_questions": 2 + i % 3},
                        config={"callbacks": [handler]},
                    )
                    for i, q in enumerate(batch, start)
                )
            )
        records = await engine_requests(base_url)

    learned = hermes.graph(APP)
    print(f"learned {learned.runs} runs of {APP!r}; nodes: {sorted(learned.nodes)}")
    print(learned.to_mermaid())
    widths = learned.node_stats("research").width.values
    print(f"research fan-out widths seen: {sorted({int(w) for w in widths})}")
    print("P(next | write, 1st visit):", learned.next_stage_probs(hermes.RunState(node="write")))
    last = records[-1]
    headers = last["headers"]
    assert isinstance(headers, dict)
    print(
        "last engine request: unit",
        headers.get("x-hermes-unit"),
        "rank",
        headers.get("x-hermes-rank"),
        "-> vLLM priority",
        last["priority"],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="LangGraph + Hermes callback recipe")
    parser.add_argument("--invokes", type=int, default=12, help="graph invocations to run")
    asyncio.run(main(parser.parse_args().invokes))
