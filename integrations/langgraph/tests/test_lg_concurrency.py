"""One handler shared by many concurrent invocations keeps their runs (and hints) apart."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hermes_langgraph import HermesCallbackHandler
from lg_apps import ScriptedChatModel, react_graph, react_input

import hermes_sdk.instrument as hi


def _rounds_of(content: str) -> int:
    found = re.search(r"rounds=(\d+)", content)
    assert found is not None
    return int(found.group(1))


def _check_separated(handler: HermesCallbackHandler, model: ScriptedChatModel, n: int) -> None:
    paths = {p.run_id: p for p in handler.recent_paths}
    assert len(paths) == n
    # every model call saw the hints of its own invocation's run, and that run's path has
    # exactly the stages its input asked for
    by_run: dict[str, set[str]] = {}
    for content, run_id in model.seen_hints:
        assert run_id is not None
        by_run.setdefault(run_id, set()).add(content)
    assert set(by_run) == set(paths)
    for run_id, contents in by_run.items():
        (content,) = contents
        rounds = _rounds_of(content)
        assert [s.node for s in paths[run_id].stages] == ["agent"] + ["tools", "agent"] * rounds
        assert len([c for c, r in model.seen_hints if r == run_id]) == rounds + 1
    assert handler.open_runs == 0 and handler._tracker.open_entries == 0
    assert handler.errors == 0


async def test_twenty_concurrent_ainvokes_keep_runs_separate() -> None:
    model = ScriptedChatModel(delay_s=0.002)
    graph = react_graph(model)
    handler = HermesCallbackHandler(app="concurrent")
    inputs = [react_input(i % 4, width=1 + i % 2) for i in range(20)]
    outs = await asyncio.gather(
        *(graph.ainvoke(x, config={"callbacks": [handler]}) for x in inputs)
    )
    for i, out in enumerate(outs):
        assert out["messages"][-1].content == f"answer after {i % 4}"
    _check_separated(handler, model, 20)
    assert hi.graph("concurrent").runs == 20


def test_concurrent_sync_invokes_from_threads_keep_runs_separate() -> None:
    model = ScriptedChatModel()
    graph = react_graph(model)
    handler = HermesCallbackHandler(app="threads")

    def one(i: int) -> Any:
        return graph.invoke(react_input(i % 3), config={"callbacks": [handler]})

    with ThreadPoolExecutor(max_workers=8) as pool:
        outs = list(pool.map(one, range(16)))
    assert [o["messages"][-1].content for o in outs] == [f"answer after {i % 3}" for i in range(16)]
    _check_separated(handler, model, 16)
