"""Small real LangGraph apps shared by the hermes-langgraph tests (no network, deterministic).

``ScriptedChatModel`` is a langchain-core chat model whose reply depends only on the messages:
it asks for ``rounds`` tool calls (read from the first human message ``"rounds=N width=W"``),
``W`` calls per round, then answers. It reports ``usage_metadata`` like a real provider.
"""

from __future__ import annotations

import asyncio
import operator
import re
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Send, interrupt
from pydantic import Field

TOKENS_PER_MESSAGE = 10
OUTPUT_TOKENS = 5

_SPEC = re.compile(r"rounds=(\d+)(?: width=(\d+))?")


class ScriptedChatModel(BaseChatModel):
    """Deterministic tool-calling chat model (see module docstring)."""

    model_name: str = "scripted-1"
    seen_hints: list[tuple[str, str | None]] = Field(default_factory=list)
    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self

    def _reply(self, messages: list[BaseMessage]) -> ChatResult:
        from hermes_langgraph import current_hints

        hints = current_hints()
        first = next((m for m in messages if isinstance(m, HumanMessage)), None)
        spec = _SPEC.search(str(first.content) if first is not None else "")
        rounds = int(spec.group(1)) if spec else 0
        width = int(spec.group(2) or 1) if spec else 1
        if hints is not None:
            self.seen_hints.append((str(first.content) if first else "", hints.run_id))
        done = sum(1 for m in messages if isinstance(m, ToolMessage)) // width
        usage = {
            "input_tokens": TOKENS_PER_MESSAGE * len(messages),
            "output_tokens": OUTPUT_TOKENS,
            "total_tokens": TOKENS_PER_MESSAGE * len(messages) + OUTPUT_TOKENS,
        }
        if done < rounds:
            calls = [
                {"name": "search", "args": {"q": f"r{done}c{i}"}, "id": f"call-{done}-{i}"}
                for i in range(width)
            ]
            msg = AIMessage(content="", tool_calls=calls, usage_metadata=usage)  # type: ignore[arg-type]
        else:
            msg = AIMessage(content=f"answer after {done}", usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._reply(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._reply(messages)


@tool
def search(q: str) -> str:
    """Look ``q`` up (a stand-in tool)."""
    return f"result for {q}"


def react_graph(model: BaseChatModel | None = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """agent <-> tools until the model stops calling tools (a hand-written ReAct loop)."""
    chat = model if model is not None else ScriptedChatModel()

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [chat.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await chat.ainvoke(state["messages"])]}

    from langchain_core.runnables import RunnableLambda

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(agent, afunc=aagent))
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def react_input(rounds: int, width: int = 1) -> dict[str, list[BaseMessage]]:
    """Input asking the scripted model for ``rounds`` tool rounds of ``width`` calls."""
    return {"messages": [HumanMessage(f"rounds={rounds} width={width}")]}


class MapState(TypedDict):
    """State of the map-reduce app."""

    width: int
    topic: str
    summaries: Annotated[list[str], operator.add]
    final: str


def map_reduce_graph(
    model: BaseChatModel | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """plan -> Send(summarise) x width -> combine: the classic map-reduce with ``Send``."""
    chat = model if model is not None else ScriptedChatModel()

    def plan(state: MapState) -> dict[str, object]:
        return {"summaries": []}

    def fan_out(state: MapState) -> list[Send]:
        return [
            Send("summarise", {"topic": f"part {i}", "width": state["width"]})
            for i in range(state["width"])
        ]

    def summarise(state: MapState) -> dict[str, list[str]]:
        reply = chat.invoke([HumanMessage(f"summarise {state['topic']}")])
        return {"summaries": [str(reply.content)]}

    def combine(state: MapState) -> dict[str, str]:
        return {"final": " / ".join(sorted(state["summaries"]))}

    builder = StateGraph(MapState)
    builder.add_node("plan", plan)
    builder.add_node("summarise", summarise)
    builder.add_node("combine", combine)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["summarise"])
    builder.add_edge("summarise", "combine")
    builder.add_edge("combine", END)
    return builder.compile()


class SubState(TypedDict):
    """State of the subgraph app."""

    question: str
    drafts: int
    answer: str


def subgraph_graph(model: BaseChatModel | None = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """prepare -> research (a compiled subgraph: draft <-> check, 2 drafts) -> publish."""
    chat = model if model is not None else ScriptedChatModel()

    def draft(state: SubState) -> dict[str, object]:
        reply = chat.invoke([HumanMessage(f"draft {state['question']}")])
        return {"drafts": state["drafts"] + 1, "answer": str(reply.content)}

    def check(state: SubState) -> dict[str, object]:
        return {}

    def again(state: SubState) -> str:
        return "draft" if state["drafts"] < 2 else END

    inner = StateGraph(SubState)
    inner.add_node("draft", draft)
    inner.add_node("check", check)
    inner.add_edge(START, "draft")
    inner.add_edge("draft", "check")
    inner.add_conditional_edges("check", again, ["draft", END])
    research = inner.compile()

    outer = StateGraph(SubState)
    outer.add_node("prepare", lambda state: {"drafts": 0})
    outer.add_node("research", research)
    outer.add_node("publish", lambda state: {"answer": state["answer"].upper()})
    outer.add_edge(START, "prepare")
    outer.add_edge("prepare", "research")
    outer.add_edge("research", "publish")
    outer.add_edge("publish", END)
    return outer.compile()


class ReviewState(TypedDict):
    """State of the human-in-the-loop app."""

    draft: str
    verdict: str


def interrupt_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """write -> review (``interrupt()`` for a human verdict) -> publish, with a checkpointer."""

    def write(state: ReviewState) -> dict[str, str]:
        return {"draft": "text"}

    def review(state: ReviewState) -> dict[str, str]:
        verdict = interrupt({"draft": state["draft"]})
        return {"verdict": str(verdict)}

    def publish(state: ReviewState) -> dict[str, str]:
        return {"draft": state["draft"] + " (" + state["verdict"] + ")"}

    builder = StateGraph(ReviewState)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_node("publish", publish)
    builder.add_edge(START, "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder.compile(checkpointer=InMemorySaver())
