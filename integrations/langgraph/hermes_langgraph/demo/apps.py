"""Four real LangGraph apps of different shapes, used by `hermes demo` and the cookbook.

Each app is a compiled LangGraph graph whose LLM nodes call a chat model (``ChatOpenAI`` pointed
at the Hermes gateway in the demo). Control flow that a real app would take from the model's
answer (when to stop a ReAct loop, whether the tests pass) is drawn from a per-run seed in the
input, so a seeded demo replays the same paths under every policy:

- ``rag``: retrieve (retriever) -> answer (llm). Short.
- ``react``: agent (llm) <-> search (tool), 1-6 turns with a non-geometric law. Medium.
- ``mapreduce``: split -> summarise (llm, ``Send`` fan-out of 4-10) -> combine (llm on the slow
  tier). Long.
- ``codefix``: write (llm) -> test (tool) -> back to write with p=0.5, at most 5 turns. Variable.
"""

from __future__ import annotations

import asyncio
import operator
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

ChatFactory = Callable[[int, str], BaseChatModel]
"""``chat(max_tokens, tier)``: a chat model answering with at most ``max_tokens`` tokens, served by
the ``"fast"`` (shared) or ``"slow"`` engine tier."""

_CORPUS = (
    "Hermes learns a probabilistic demand graph per application.",
    "The Gittins index ranks jobs whose sizes are only known as distributions.",
    "Least slack first serves the application closest to missing its deadline.",
    "Cold starts of containers and model servers add delay to the critical path.",
    "Continuous batching lets an LLM engine decode many requests per step.",
    "Map-reduce summarisation fans out one call per chunk and combines the results.",
)


class KeywordRetriever(BaseRetriever):
    """A tiny in-memory retriever: documents ranked by words shared with the query."""

    k: int = 2

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = set(query.lower().split())
        scored = sorted(_CORPUS, key=lambda doc: -len(words & set(doc.lower().split())))
        return [Document(page_content=doc) for doc in scored[: self.k]]


@tool
async def web_search(query: str) -> str:
    """Search the web (simulated: 20 ms of I/O)."""
    await asyncio.sleep(0.02)
    return f"results for {query}"


@tool
async def run_tests(code: str) -> str:
    """Run the test suite on the code (simulated: 30 ms in a sandbox)."""
    await asyncio.sleep(0.03)
    return "2 passed, 1 failed"


class RagState(TypedDict, total=False):
    question: str
    seed: int
    context: str
    answer: str


def build_rag(chat: ChatFactory) -> Any:
    """retrieve -> answer: the short app of the mix."""
    retriever = KeywordRetriever()
    model = chat(24, "fast")

    async def retrieve(state: RagState) -> RagState:
        docs = await retriever.ainvoke(state["question"])
        return {"context": " ".join(d.page_content for d in docs)}

    async def answer(state: RagState) -> RagState:
        prompt = f"Context: {state['context']}\nQuestion: {state['question']}"
        reply = await model.ainvoke([HumanMessage(prompt)])
        return {"answer": str(reply.content)}

    g = StateGraph(RagState)
    g.add_node("retrieve", retrieve)
    g.add_node("answer", answer)
    g.add_edge(START, "retrieve")
    g.add_edge("retrieve", "answer")
    g.add_edge("answer", END)
    return g.compile()


class ReactState(TypedDict, total=False):
    question: str
    seed: int
    turn: int
    turns: int
    notes: Annotated[list[str], operator.add]


_REACT_TURNS = ((1, 0.4), (2, 0.3), (3, 0.2), (6, 0.1))


def build_react(chat: ChatFactory) -> Any:
    """agent <-> search: a tool loop whose length (1, 2, 3 or 6 turns) is not geometric."""
    model = chat(16, "fast")

    async def agent(state: ReactState) -> ReactState:
        turns = state.get("turns") or _draw(state["seed"], _REACT_TURNS)
        reply = await model.ainvoke([HumanMessage(f"Think about: {state['question']}")])
        return {"turn": state.get("turn", 0) + 1, "turns": turns, "notes": [str(reply.content)]}

    async def search(state: ReactState) -> ReactState:
        result = await web_search.ainvoke({"query": state["question"]})
        return {"notes": [str(result)]}

    def after_agent(state: ReactState) -> str:
        return END if state["turn"] >= state["turns"] else "search"

    g = StateGraph(ReactState)
    g.add_node("agent", agent)
    g.add_node("search", search)
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", after_agent, ["search", END])
    g.add_edge("search", "agent")
    return g.compile()


class MapReduceState(TypedDict, total=False):
    question: str
    seed: int
    chunks: list[str]
    summaries: Annotated[list[str], operator.add]
    summary: str


class ChunkState(TypedDict):
    chunk: str


def build_mapreduce(chat: ChatFactory) -> Any:
    """split -> summarise x N (``Send`` fan-out, N in 4..10) -> combine: the long app."""
    mapper, reducer = chat(48, "fast"), chat(96, "slow")

    def split(state: MapReduceState) -> MapReduceState:
        n = random.Random(state["seed"]).randint(4, 10)
        return {"chunks": [f"{state['question']} part {i}" for i in range(n)]}

    def fan_out(state: MapReduceState) -> list[Send]:
        return [Send("summarise", {"chunk": c}) for c in state["chunks"]]

    async def summarise(state: ChunkState) -> MapReduceState:
        reply = await mapper.ainvoke([HumanMessage(f"Summarise: {state['chunk']}")])
        return {"summaries": [str(reply.content)]}

    async def combine(state: MapReduceState) -> MapReduceState:
        reply = await reducer.ainvoke([HumanMessage("Combine: " + " ".join(state["summaries"]))])
        return {"summary": str(reply.content)}

    g = StateGraph(MapReduceState)
    g.add_node("split", split)
    g.add_node("summarise", summarise)
    g.add_node("combine", combine)
    g.add_edge(START, "split")
    g.add_conditional_edges("split", fan_out, ["summarise"])
    g.add_edge("summarise", "combine")
    g.add_edge("combine", END)
    return g.compile()


class CodeFixState(TypedDict, total=False):
    question: str
    seed: int
    turn: int
    code: str
    report: str


def build_codefix(chat: ChatFactory) -> Any:
    """write -> test -> write ... : the tests pass with p=0.5 per turn, at most 5 turns."""
    model = chat(64, "fast")

    async def write(state: CodeFixState) -> CodeFixState:
        prompt = f"Fix the code for {state['question']}. Last report: {state.get('report', '')}"
        reply = await model.ainvoke([HumanMessage(prompt)])
        return {"code": str(reply.content), "turn": state.get("turn", 0) + 1}

    async def test(state: CodeFixState) -> CodeFixState:
        return {"report": str(await run_tests.ainvoke({"code": state["code"]}))}

    def after_test(state: CodeFixState) -> str:
        passed = random.Random(state["seed"] * 31 + state["turn"]).random() < 0.5
        return END if passed or state["turn"] >= 5 else "write"

    g = StateGraph(CodeFixState)
    g.add_node("write", write)
    g.add_node("test", test)
    g.add_edge(START, "write")
    g.add_edge("write", "test")
    g.add_conditional_edges("test", after_test, ["write", END])
    return g.compile()


def _draw(seed: int, law: Sequence[tuple[int, float]]) -> int:
    u = random.Random(seed).random()
    for value, p in law:
        if u < p:
            return value
        u -= p
    return law[-1][0]


@dataclass(frozen=True, slots=True)
class DemoApp:
    """One app of the demo mix: its name, relative frequency and graph builder."""

    name: str
    weight: float
    build: Callable[[ChatFactory], Any]


DEMO_APPS: tuple[DemoApp, ...] = (
    DemoApp("rag", 4.0, build_rag),
    DemoApp("react", 3.0, build_react),
    DemoApp("codefix", 2.0, build_codefix),
    DemoApp("mapreduce", 0.25, build_mapreduce),
)
"""The demo mix: many short apps, some long ones (a heavy-ish tail, where Gittins helps)."""
