"""Runs and units never mix across asyncio tasks and threads."""

from __future__ import annotations

import asyncio
import random
import threading

import hermes_sdk.instrument as hi
from hermes_sdk.instrument.handles import RunHandle


@hi.llm
async def think(tag: str) -> str:
    await asyncio.sleep(random.random() * 0.002)
    return tag


@hi.tool
async def act(tag: str) -> str:
    await asyncio.sleep(0)
    return tag


@hi.tool
def work(tag: str) -> str:
    return tag


async def test_fifty_concurrent_runs_keep_their_own_units() -> None:
    rng = random.Random(7)
    plans = [[rng.choice(["think", "act"]) for _ in range(rng.randint(1, 8))] for _ in range(50)]
    handles: dict[int, RunHandle] = {}

    async def one(i: int) -> None:
        async with hi.run(f"app{i % 5}", run_id=f"r{i}") as r:
            handles[i] = r
            for step in plans[i]:
                out = await (think if step == "think" else act)(f"r{i}")
                assert out == f"r{i}"
                assert hi.current_hints() is not None
                assert hi.current_hints().run_id == f"r{i}"  # type: ignore[union-attr]

    await asyncio.gather(*(one(i) for i in range(50)))
    for i, r in handles.items():
        assert r.path is not None
        assert [s.node for s in r.path.stages] == plans[i]
        assert all(u.run is r for u in r.units)
    assert hi.stats().runs_completed == 50


def test_eight_threads_through_context_executor_join_the_submitting_run() -> None:
    barrier = threading.Barrier(8)

    @hi.tool
    def parallel(i: int) -> int:
        barrier.wait(timeout=10)  # all eight overlap: one stage of width 8
        return i

    with hi.run("threads") as r, hi.context_executor(max_workers=8) as pool:
        assert sorted(pool.map(parallel, range(8))) == list(range(8))
        assert pool.submit(work, "after").result() == "after"
    assert r.path is not None
    assert [(s.node, s.width) for s in r.path.stages] == [("parallel", 8), ("work", 1)]


def test_eight_threaded_runs_never_mix() -> None:
    results: dict[int, RunHandle] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def one(i: int) -> None:
        try:
            start.wait(timeout=10)
            with hi.run("t", run_id=f"t{i}") as r:
                results[i] = r
                with hi.context_executor(2) as pool:
                    for k in range(i + 1):
                        pool.submit(work, f"t{i}-{k}").result()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, r in results.items():
        assert r.path is not None and len(r.path.stages) == i + 1
        assert all(u.run is r for u in r.units)


def test_wrap_context_carries_the_unit_as_parent() -> None:
    seen: list[object] = []

    @hi.unit
    def outer() -> None:
        t = threading.Thread(target=hi.wrap_context(work), args=("x",))
        t.start()
        t.join()
        plain = threading.Thread(target=lambda: seen.append(hi.current_run()))
        plain.start()
        plain.join()

    with hi.run("wrap") as r:
        outer()
    assert [u.name for u in r.units] == ["outer", "work"]
    assert r.units[1].parent is r.units[0]
    assert seen == [None]  # a bare thread does not see the run
