"""Human-in-the-loop LangGraph apps for the interrupt tests (real LangGraph, no network).

``hitl_graph``: prep -> ask (``interrupt()`` for a person's answer) -> fin, the app of issue 24.
``approvals_graph``: prep -> approve (two ``interrupt()`` calls: two pauses) -> fin.
Also runnable as a script (``python hitl_apps.py <hermes.db> <checkpoints.db> <thread> start|
resume``) so two processes can share a SQLite checkpointer and a Hermes store.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt


class AskState(TypedDict):
    """State of the HITL apps."""

    question: str
    answer: str
    done: bool


def _prep(state: AskState) -> dict[str, object]:
    return {"question": "ship it?"}


def _ask(state: AskState) -> dict[str, object]:
    reply = interrupt({"question": state["question"]})
    if reply == "explode":
        raise RuntimeError("the resume value broke the node")
    return {"answer": str(reply)}


def _approve(state: AskState) -> dict[str, object]:
    first = interrupt("legal?")
    second = interrupt("security?")
    return {"answer": f"{first}+{second}"}


def _fin(state: AskState) -> dict[str, object]:
    return {"done": True}


def hitl_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """prep -> ask (interrupt) -> fin."""
    builder = StateGraph(AskState)
    builder.add_node("prep", _prep)
    builder.add_node("ask", _ask)
    builder.add_node("fin", _fin)
    builder.add_edge(START, "prep")
    builder.add_edge("prep", "ask")
    builder.add_edge("ask", "fin")
    builder.add_edge("fin", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def approvals_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """prep -> approve (two interrupts in one node) -> fin."""
    builder = StateGraph(AskState)
    builder.add_node("prep", _prep)
    builder.add_node("approve", _approve)
    builder.add_node("fin", _fin)
    builder.add_edge(START, "prep")
    builder.add_edge("prep", "approve")
    builder.add_edge("approve", "fin")
    builder.add_edge("fin", END)
    return builder.compile(checkpointer=InMemorySaver())


def crash_graph(
    checkpointer: BaseCheckpointSaver[Any], marker: str
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """prep -> work (kills its process the first time: no marker file yet) -> fin."""
    import os

    def work(state: AskState) -> dict[str, object]:
        if not os.path.exists(marker):
            with open(marker, "w") as fh:
                fh.write("crashed once")
            os._exit(3)  # a crash: no callback, no exit handler, nothing flushed
        return {"answer": "worked"}

    builder = StateGraph(AskState)
    builder.add_node("prep", _prep)
    builder.add_node("work", work)
    builder.add_node("fin", _fin)
    builder.add_edge(START, "prep")
    builder.add_edge("prep", "work")
    builder.add_edge("work", "fin")
    builder.add_edge("fin", END)
    return builder.compile(checkpointer=checkpointer)


START_INPUT: AskState = {"question": "", "answer": "", "done": False}


def main(argv: list[str]) -> int:
    """One process's half of the cross-process test: ``start`` runs until the interrupt,
    ``resume`` continues the thread; both print the graph's output."""
    from hermes_langgraph import HermesCallbackHandler
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.types import Command

    import hermes_sdk as hermes

    store_db, checkpoints_db, thread, action = argv
    hermes.configure(store=f"sqlite:///{store_db}")
    conn = sqlite3.connect(checkpoints_db, check_same_thread=False)
    if action.startswith("crash"):  # durable execution: the first process dies mid-run
        graph = crash_graph(SqliteSaver(conn), f"{checkpoints_db}.{thread}.marker")
        handler = HermesCallbackHandler(app="durable-x")
    else:
        graph = hitl_graph(SqliteSaver(conn))
        handler = HermesCallbackHandler(app="hitl-x")
    cfg: Any = {"configurable": {"thread_id": thread}, "callbacks": [handler]}
    if action == "start":
        out = graph.invoke(START_INPUT, cfg)
    elif action == "crash-start":
        out = graph.invoke(START_INPUT, cfg, durability="sync")
    elif action == "crash-resume":
        out = graph.invoke(None, cfg, durability="sync")
    else:
        out = graph.invoke(Command(resume="yes"), cfg)
    print(sorted(out), out.get("answer"), handler.errors, flush=True)
    hermes.flush(10.0)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
