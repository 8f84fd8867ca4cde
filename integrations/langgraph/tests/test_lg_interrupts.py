"""Interrupts, resumes and checkpoints: one Hermes run per LangGraph thread (issue 24).

Real LangGraph graphs with real checkpointers (``InMemorySaver``; ``SqliteSaver`` shared by two
processes); the person answering is the test, which waits ``HUMAN_WAIT_S`` before resuming.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hermes_langgraph import HermesCallbackHandler
from hitl_apps import START_INPUT, approvals_graph, hitl_graph
from langgraph.types import Command

import hermes_sdk.instrument as hi
from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument.paused_record import PAUSED_NAMESPACE
from hermes_sdk.instrument.paused_store import paused_store

HUMAN_WAIT_S = 0.3
"""How long the test's "person" takes to answer (a lower bound of every pause)."""
TESTS = Path(__file__).parent


def nodes_of(path: RunPath) -> list[str]:
    return [s.node for s in path.stages]


def probabilities(app: str) -> dict[tuple[str, str], float]:
    graph = hi.graph(app)
    out = {}
    for (node, _visit), counts in graph.transitions.items():
        total = sum(counts.values())
        for target, n in counts.items():
            out[(node, target)] = n / total
    return out


def cfg(handler: HermesCallbackHandler, thread: str) -> Any:
    return {"configurable": {"thread_id": thread}, "callbacks": [handler]}


def test_interrupt_and_resume_are_one_run_per_thread() -> None:
    handler = HermesCallbackHandler(app="hitl")
    graph = hitl_graph()
    threads = [f"t{i}" for i in range(5)]
    for thread in threads:
        first = graph.invoke(START_INPUT, cfg(handler, thread))
        assert "__interrupt__" in first and not first["done"]
        assert handler.open_runs == 0  # paused, not open in the handler
    time.sleep(HUMAN_WAIT_S)
    for thread in threads:
        done = graph.invoke(Command(resume="yes"), cfg(handler, thread))
        assert done["answer"] == "yes" and done["done"]
    paths = list(handler.recent_paths)
    assert len(paths) == len(threads)  # runs == threads
    assert all(nodes_of(p) == ["prep", "ask", "fin"] for p in paths)
    assert not any(p.failed or p.abandoned for p in paths)
    assert len({p.run_id for p in paths}) == len(threads)
    graph_ = hi.graph("hitl")
    assert graph_.runs == len(threads) and graph_.failed_runs == 0
    assert probabilities("hitl") == {
        ("START", "prep"): 1.0,
        ("prep", "ask"): 1.0,
        ("ask", "fin"): 1.0,
        ("fin", "END"): 1.0,
    }
    for p in paths:
        ask = p.stages[1]
        assert p.paused_s >= HUMAN_WAIT_S  # the human wait is recorded, apart
        assert ask.width == 1 and ask.service_s < p.paused_s  # ... and not as ask's service
    learned_ask_s = graph_.node_stats("ask").service_s.mean()
    assert learned_ask_s is not None and learned_ask_s < HUMAN_WAIT_S
    assert handler.errors == 0


def test_the_interrupted_attempt_and_the_rerun_are_one_call() -> None:
    """LangGraph re-runs the interrupted node from its start; both attempts are its service."""
    handler = HermesCallbackHandler(app="hitl-rerun")
    graph = hitl_graph()
    graph.invoke(START_INPUT, cfg(handler, "a"))
    graph.invoke(Command(resume="yes"), cfg(handler, "a"))
    (path,) = handler.recent_paths
    ask = path.stages[1]
    assert [c.failed for c in ask.calls] == [False]
    assert ask.calls[0].service_s > 0.0


def test_several_interrupts_in_one_run() -> None:
    handler = HermesCallbackHandler(app="approvals")
    graph = approvals_graph()
    for thread in ("a", "b"):
        first = graph.invoke(START_INPUT, cfg(handler, thread))
        assert first["__interrupt__"][0].value == "legal?"
        time.sleep(HUMAN_WAIT_S / 2)
        second = graph.invoke(Command(resume="ok"), cfg(handler, thread))
        assert second["__interrupt__"][0].value == "security?"
        time.sleep(HUMAN_WAIT_S / 2)
        done = graph.invoke(Command(resume="fine"), cfg(handler, thread))
        assert done["answer"] == "ok+fine"
    paths = list(handler.recent_paths)
    assert [nodes_of(p) for p in paths] == [["prep", "approve", "fin"]] * 2
    assert all(p.paused_s >= HUMAN_WAIT_S for p in paths)
    assert probabilities("approvals")[("prep", "approve")] == 1.0
    assert probabilities("approvals")[("approve", "fin")] == 1.0


def test_a_resume_that_fails_fails_the_one_run() -> None:
    handler = HermesCallbackHandler(app="hitl-fail")
    graph = hitl_graph()
    graph.invoke(START_INPUT, cfg(handler, "f"))
    with pytest.raises(RuntimeError, match="broke the node"):
        graph.invoke(Command(resume="explode"), cfg(handler, "f"))
    (path,) = handler.recent_paths
    assert path.failed and not path.abandoned and nodes_of(path) == ["prep", "ask"]
    assert path.stages[1].calls[0].failed
    graph_ = hi.graph("hitl-fail")
    assert graph_.runs == 1 and graph_.failed_runs == 1
    assert probabilities("hitl-fail") == {("START", "prep"): 1.0, ("prep", "ask"): 1.0}


def test_paused_longer_than_the_horizon_is_abandoned() -> None:
    handler = HermesCallbackHandler(app="hitl-gone", pause_horizon_s=0.05)
    graph = hitl_graph()
    graph.invoke(START_INPUT, cfg(handler, "gone"))
    assert handler.sweep_paused() == []  # not yet past the horizon
    time.sleep(0.1)
    (path,) = handler.sweep_paused()
    assert path.abandoned and path.failed and nodes_of(path) == ["prep", "ask"]
    assert path.stages[1].calls[0].failed  # the interrupted call never completed
    assert path.paused_s >= 0.05
    graph_ = hi.graph("hitl-gone")
    assert graph_.runs == 1 and graph_.failed_runs == 1
    assert probabilities("hitl-gone") == {("START", "prep"): 1.0, ("prep", "ask"): 1.0}
    # a late resume finds nothing to continue: LangGraph finishes the thread as a new run
    graph.invoke(Command(resume="late"), cfg(handler, "gone"))
    late = handler.recent_paths[-1]
    assert nodes_of(late) == ["ask", "fin"] and late.run_id != path.run_id
    assert handler.sweep_paused() == []


def test_new_input_on_a_paused_thread_abandons_the_paused_run() -> None:
    handler = HermesCallbackHandler(app="hitl-restart")
    graph = hitl_graph()
    graph.invoke(START_INPUT, cfg(handler, "r"))
    graph.invoke(START_INPUT, cfg(handler, "r"))  # starts over instead of answering
    gone, *rest = handler.recent_paths
    assert gone.abandoned and nodes_of(gone) == ["prep", "ask"] and rest == []
    graph.invoke(Command(resume="yes"), cfg(handler, "r"))
    assert nodes_of(handler.recent_paths[-1]) == ["prep", "ask", "fin"]
    assert handler.recent_paths[-1].run_id != gone.run_id


def test_static_interrupt_before_a_node_pauses_the_run() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    builder = hitl_graph().builder
    graph = builder.compile(checkpointer=InMemorySaver(), interrupt_before=["fin"])
    handler = HermesCallbackHandler(app="hitl-before")
    graph.invoke(START_INPUT, cfg(handler, "s"))  # stops at ask's interrupt
    graph.invoke(Command(resume="yes"), cfg(handler, "s"))  # stops before fin
    assert list(handler.recent_paths) == []
    graph.invoke(None, cfg(handler, "s"))  # continue past the breakpoint
    (path,) = handler.recent_paths
    assert nodes_of(path) == ["prep", "ask", "fin"] and not path.failed


@pytest.mark.parametrize("mode", ["values", "updates", "messages", "custom", "debug"])
async def test_every_stream_mode_pauses_and_resumes_one_run(mode: str) -> None:
    handler = HermesCallbackHandler(app=f"hitl-stream-{mode}")
    graph = hitl_graph()
    async for _ in graph.astream(START_INPUT, cfg(handler, "s"), stream_mode=mode):
        pass
    for _ in graph.stream(Command(resume="yes"), cfg(handler, "s"), stream_mode=mode):
        pass
    (path,) = handler.recent_paths
    assert nodes_of(path) == ["prep", "ask", "fin"] and path.paused_s > 0.0


async def test_astream_events_pauses_and_resumes_one_run() -> None:
    handler = HermesCallbackHandler(app="hitl-events")
    graph = hitl_graph()
    async for _ in graph.astream_events(START_INPUT, cfg(handler, "e"), version="v2"):
        pass
    events = [
        ev["event"]
        async for ev in graph.astream_events(Command(resume="y"), cfg(handler, "e"), version="v2")
    ]
    assert "on_chain_end" in events
    (path,) = handler.recent_paths
    assert nodes_of(path) == ["prep", "ask", "fin"]


async def test_concurrent_threads_resume_their_own_runs() -> None:
    handler = HermesCallbackHandler(app="hitl-async")
    graph = hitl_graph()
    threads = [f"c{i}" for i in range(6)]
    await asyncio.gather(*(graph.ainvoke(START_INPUT, cfg(handler, t)) for t in threads))
    firsts = {t: (await graph.aget_state(cfg(handler, t))).config for t in threads}
    assert len(firsts) == len(threads)
    await asyncio.gather(
        *(graph.ainvoke(Command(resume=t), cfg(handler, t)) for t in reversed(threads))
    )
    paths = list(handler.recent_paths)
    assert len(paths) == len(threads)
    assert all(nodes_of(p) == ["prep", "ask", "fin"] for p in paths)


def _run(script_args: list[str], returncode: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, str(TESTS / "hitl_apps.py"), *script_args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TESTS,
    )
    assert done.returncode == returncode, done.stderr
    return done.stdout


def test_durable_execution_after_a_crash_continues_the_run(tmp_path: Path) -> None:
    store_db, checkpoints_db = tmp_path / "hermes.db", tmp_path / "checkpoints.db"
    for thread in ("d1", "d2"):
        _run([str(store_db), str(checkpoints_db), thread, "crash-start"], returncode=3)
        out = _run([str(store_db), str(checkpoints_db), thread, "crash-resume"])
        assert "worked 0" in out
    hi.configure(store=f"sqlite:///{store_db}")
    graph_ = hi.graph("durable-x")
    assert graph_.runs == 2 and graph_.failed_runs == 0  # one run per thread, not two
    assert probabilities("durable-x") == {
        ("START", "prep"): 1.0,
        ("prep", "work"): 1.0,
        ("work", "fin"): 1.0,
        ("fin", "END"): 1.0,
    }


def test_resume_in_another_process_sharing_sqlite_checkpoints_and_store(tmp_path: Path) -> None:
    store_db, checkpoints_db = tmp_path / "hermes.db", tmp_path / "checkpoints.db"
    threads = ["x1", "x2", "x3"]
    for thread in threads:  # process per interrupt ...
        out = _run([str(store_db), str(checkpoints_db), thread, "start"])
        assert "__interrupt__" in out and out.strip().endswith("0")
    for thread in threads:  # ... and another process per resume
        out = _run([str(store_db), str(checkpoints_db), thread, "resume"])
        assert "yes 0" in out
    hi.configure(store=f"sqlite:///{store_db}")
    graph_ = hi.graph("hitl-x")
    assert graph_.runs == len(threads) and graph_.failed_runs == 0
    assert probabilities("hitl-x") == {
        ("START", "prep"): 1.0,
        ("prep", "ask"): 1.0,
        ("ask", "fin"): 1.0,
        ("fin", "END"): 1.0,
    }
    store = paused_store()
    assert store is not None
    left = [store.get_json(PAUSED_NAMESPACE, k) for k in store.list_keys(PAUSED_NAMESPACE)]
    assert left and all("path" not in doc for doc in left if doc)  # every pause was claimed


def test_an_interrupt_inside_a_subgraph_pauses_the_run_and_its_sub_run() -> None:
    from typing import TypedDict

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    class S(TypedDict):
        text: str

    inner = StateGraph(S)
    inner.add_node("draft", lambda s: {"text": "draft"})
    inner.add_node("review", lambda s: {"text": f"{s['text']} ({interrupt('ok?')})"})
    inner.add_node("polish", lambda s: {"text": s["text"] + "!"})
    inner.add_edge(START, "draft")
    inner.add_edge("draft", "review")
    inner.add_edge("review", "polish")
    inner.add_edge("polish", END)
    outer = StateGraph(S)
    outer.add_node("plan", lambda s: {"text": ""})
    outer.add_node("write", inner.compile())
    outer.add_node("publish", lambda s: {"text": s["text"].upper()})
    outer.add_edge(START, "plan")
    outer.add_edge("plan", "write")
    outer.add_edge("write", "publish")
    outer.add_edge("publish", END)
    graph = outer.compile(checkpointer=InMemorySaver())
    handler = HermesCallbackHandler(app="nested-hitl")
    for thread in ("n1", "n2"):
        first = graph.invoke({"text": ""}, cfg(handler, thread))
        assert "__interrupt__" in first
        done = graph.invoke(Command(resume="yes"), cfg(handler, thread))
        assert done["text"] == "DRAFT (YES)!"
    paths = list(handler.recent_paths)
    assert [nodes_of(p) for p in paths] == [["plan", "write", "publish"]] * 2
    sub = hi.graph("nested-hitl/write")
    assert sub.runs == 2 and sub.failed_runs == 0
    assert probabilities("nested-hitl/write") == {
        ("START", "draft"): 1.0,
        ("draft", "review"): 1.0,
        ("review", "polish"): 1.0,
        ("polish", "END"): 1.0,
    }
    assert handler.errors == 0


def test_a_background_sweep_abandons_old_pauses_while_invocations_start() -> None:
    handler = HermesCallbackHandler(app="hitl-swept", pause_horizon_s=0.05)
    graph = hitl_graph()
    graph.invoke(START_INPUT, cfg(handler, "old"))
    time.sleep(0.1)
    graph.invoke(START_INPUT, cfg(handler, "other"))  # any invocation may start the sweep
    for _ in range(100):
        if handler.recent_paths:
            break
        time.sleep(0.05)
    paths = list(handler.recent_paths)  # "other" too, if the sweep ran late enough
    assert paths and all(p.abandoned and nodes_of(p) == ["prep", "ask"] for p in paths)
