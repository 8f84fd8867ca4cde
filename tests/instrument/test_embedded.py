"""Embedded mode: decorated runs are learned into the same PDGraph as their paths fed directly."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.graph import PDGraph
from hermes_sdk.graph.records import Call, RunPath, RunState, Stage, UnitKind

KINDS: dict[str, UnitKind] = {"plan": "llm", "search": "tool", "fetch": "retriever", "draft": "llm"}


def plans(seed: int, runs: int) -> list[list[tuple[str, int]]]:
    """The generator: plan, then search or a 2-4 wide fetch fan-out, then 1-4 drafts."""
    rng = random.Random(seed)
    out = []
    for _ in range(runs):
        plan = [("plan", 1)]
        plan.append(("search", 1) if rng.random() < 0.6 else ("fetch", rng.randint(2, 4)))
        plan += [("draft", 1)] * rng.choice([1, 1, 2, 3, 4])
        out.append(plan)
    return out


@hi.llm(backend="small")
async def plan() -> dict[str, object]:
    return {"usage": {"prompt_tokens": 10, "completion_tokens": 5}}


@hi.tool
async def search() -> None:
    await asyncio.sleep(0)


@hi.retriever
async def fetch(barrier: asyncio.Barrier) -> None:
    await barrier.wait()


@hi.llm(backend="small")
async def draft() -> None:
    await asyncio.sleep(0)


async def app(steps: list[tuple[str, int]]) -> None:
    async with hi.run("rag"):
        for node, width in steps:
            if node == "plan":
                await plan()
            elif node == "search":
                await search()
            elif node == "fetch":
                barrier = asyncio.Barrier(width)
                await asyncio.gather(*(fetch(barrier) for _ in range(width)))
            else:
                await draft()


def direct_graph(all_plans: list[list[tuple[str, int]]]) -> PDGraph:
    g = PDGraph("rag")
    for steps in all_plans:
        stages = tuple(
            Stage(node=n, calls=(Call(service_s=0.001),) * w, kind=KINDS[n]) for n, w in steps
        )
        g.observe(RunPath(app="rag", stages=stages))
    return g


async def test_500_decorated_runs_learn_the_generators_graph() -> None:
    all_plans = plans(seed=3, runs=500)
    for steps in all_plans:
        await app(steps)
    learned = hi.graph("rag")
    expected = direct_graph(all_plans)
    assert learned.runs == expected.runs == 500
    states = {RunState()}
    for steps in all_plans:
        stages = [Stage(node=n, calls=(Call(0.0),) * w) for n, w in steps]
        states.update(RunState.after(tuple(stages[:k])) for k in range(1, len(stages) + 1))
    assert len(states) > 8
    for state in states:
        got, want = learned.next_stage_probs(state), expected.next_stage_probs(state)
        for node in set(got) | set(want):
            assert abs(got.get(node, 0.0) - want.get(node, 0.0)) <= 0.03, (state, node)
    fetch_stats = learned.node_stats("fetch")
    assert fetch_stats.kind == "retriever"
    assert abs(fetch_stats.width.mean() - expected.node_stats("fetch").width.mean()) <= 0.03
    plan_stats = learned.node_stats("plan")
    assert plan_stats.backend == "small" and abs(plan_stats.input_tokens.mean() - 10) < 1e-9


def test_sqlite_store_keeps_runs_across_configure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hermes.db"
    hi.configure(store=url)

    @hi.tool
    def step() -> None:
        return None

    for _ in range(7):
        with hi.run("durable"):
            step()
            step()
    assert hi.graph("durable").runs == 7
    hi.configure(store=url)  # a new process would do the same: replay the store
    assert hi.graph("durable").runs == 7
    assert hi.graph("durable").next_stage_probs(RunState()) == {"step": 1.0}


def test_hermes_store_env_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_STORE", f"sqlite:///{tmp_path}/env.db")
    hi.configure()
    with hi.run("env-app"):
        pass
    assert hi.flush(10)
    assert (tmp_path / "env.db").exists()


def test_unusable_store_never_breaks_the_app(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    hi.configure(store=f"sqlite:///{blocker}/sub/h.db")  # parent is a file: cannot open

    @hi.tool
    def step() -> int:
        return 1

    with hi.run("broken") as r:
        assert step() == 1
    assert r.path is not None
    assert hi.stats().runs_failed_to_record == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_reopens_the_store_and_keeps_learning(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fork.db"
    hi.configure(store=url)

    @hi.tool
    def step() -> None:
        return None

    for _ in range(3):
        with hi.run("forked"):
            step()
    marker = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:
        try:
            for _ in range(2):
                with hi.run("forked"):
                    step()
            marker.write_text(str(hi.graph("forked").runs))
        except BaseException:
            marker.write_text(traceback.format_exc())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert marker.read_text() == "5"  # 3 replayed from the store + 2 of its own
    assert hi.graph("forked").runs == 3


class RecordingStore:
    """A store that notes which thread appends (wraps the real in-memory store)."""

    def __init__(self) -> None:
        from hermes_sdk.store import MemoryStore

        self.inner = MemoryStore()
        self.threads: list[str] = []
        self.corrupt_rows = 0

    def append_path(self, path: object) -> None:
        self.threads.append(threading.current_thread().name)
        self.inner.append_path(path)  # type: ignore[arg-type]

    def load_paths(self) -> object:
        return self.inner.load_paths()

    def close(self) -> None:
        self.inner.close()


def test_runs_are_stored_off_the_app_thread() -> None:
    store = RecordingStore()
    hi.configure(store=store)  # type: ignore[arg-type]
    for _ in range(3):
        with hi.run("bg"):
            pass
    assert hi.flush(10)
    assert len(store.threads) == 3
    assert threading.current_thread().name not in store.threads


_EXIT_CHILD = """
import sys
import hermes_sdk as hermes
hermes.configure(store=sys.argv[1])
for _ in range(25):
    with hermes.run("exit-learn"):
        pass
"""


def test_process_exit_stores_queued_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/exit.db"
    subprocess.run([sys.executable, "-c", _EXIT_CHILD, url], check=True, timeout=60)
    hi.configure(store=url)
    assert hi.graph("exit-learn").empty_runs == 25  # runs with no unit: stored, not learned


_DISABLED_CHILD = """
import hermes_sdk as hermes

def f():
    return 7

decorated = hermes.llm(f)
with hermes.run("off") as r:
    assert decorated() == 7
print(decorated is f, r.end() is None, r.path is None, hermes.current_hints() is None)
"""


def test_hermes_disabled_env_turns_everything_off(tmp_path: Path) -> None:
    env = {**os.environ, "HERMES_DISABLED": "1", "HERMES_STORE": f"sqlite:///{tmp_path}/x.db"}
    out = subprocess.run(
        [sys.executable, "-c", _DISABLED_CHILD],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.split() == ["True", "True", "True", "True"]
    assert not (tmp_path / "x.db").exists()  # nothing was opened or stored
