"""Short loop turns on the live path: timed young collections, survivors of a timed full
collection frozen and still freed when they become cyclic garbage, tracked runs out of the
collector, events batches applied in chunks (whole even when cancelled), and a waiting acquire
awaited by its own handler (no task per waiter)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.server.gc_setup import GcSettings, collect_young_every, gc_settings
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.run_events import APPLY_CHUNK
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler
from hermes_sdk.server.wire import parse_batch
from hermes_sdk.store import open_store

from .conftest import StartServer

GPU = {"gpu": BackendConfig(max_inflight=1)}


@pytest.fixture
def quiet_gc() -> Iterator[None]:
    """No automatic collection during the test (so every one counted is the task's)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(10**8, 10**8, 10**8)
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def _young_collections() -> int:
    return int(gc.get_stats()[1]["collections"])


@pytest.mark.usefixtures("quiet_gc")
async def test_young_collections_run_on_a_timer_and_stop_on_exit() -> None:
    before = _young_collections()
    settings = GcSettings(
        freeze=False,
        full_every_s=600.0,
        threshold1=None,
        young_every_s=0.02,
        young_idle_every_s=0.02,  # no back-off while idle (the next test's)
    )
    async with gc_settings(settings):
        await asyncio.sleep(0.3)
        during = _young_collections() - before
    assert during >= 5  # ~15 ticks of 20 ms
    after_exit = _young_collections()
    await asyncio.sleep(0.1)
    assert _young_collections() == after_exit  # the task is gone
    off = GcSettings(freeze=False, full_every_s=600.0, threshold1=None, young_every_s=None)
    async with gc_settings(off):
        await asyncio.sleep(0.1)
    assert _young_collections() == after_exit


async def _ticks(cpu_clock: Callable[[], float], seconds: float) -> int:
    before = _young_collections()
    task = asyncio.ensure_future(collect_young_every(0.02, idle_every_s=1.0, cpu_clock=cpu_clock))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return _young_collections() - before


@pytest.mark.usefixtures("quiet_gc")
async def test_timed_young_collections_back_off_while_the_process_is_idle() -> None:
    """Idle (no CPU used between ticks): waits of 20, 40, 80, 160, 320 ms; busy (a CPU clock
    that runs with the wall clock): every 20 ms."""
    idle = await _ticks(lambda: 0.0, 0.45)
    busy = await _ticks(time.perf_counter, 0.45)
    assert 2 <= idle <= 5
    assert busy >= 10 and busy > 2 * idle


class _Node:
    def __init__(self) -> None:
        self.other: object = None


@pytest.mark.usefixtures("quiet_gc")
async def test_refrozen_survivors_are_still_freed_once_they_are_cyclic_garbage() -> None:
    settings = GcSettings(freeze=False, full_every_s=0.05, young_every_s=None, refreeze=True)
    async with gc_settings(settings):
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle, alive while `a` is referenced here
        alive = weakref.ref(a)
        await asyncio.sleep(0.12)  # >= 1 timed full collection: the cycle survives, frozen
        assert gc.get_freeze_count() > 0
        assert alive() is not None
        del a, b
        await asyncio.sleep(0.12)  # the next one unfreezes first: the garbage is freed
        assert alive() is None
    assert gc.get_freeze_count() == 0


def _batch(events: list[dict[str, Any]]) -> list[Any]:
    return parse_batch({"events": events}, "t")[0]


def _starts(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append({"type": "run_start", "run_id": f"r{i}", "app": "a"})
        out.append({"type": "unit_start", "run_id": f"r{i}", "unit_id": "0", "node": "plan"})
    return out


def _scheduler() -> Scheduler:
    config = ServerConfig(store_url="memory://", backends=GPU)
    return Scheduler(config, open_store("memory://"), ServerMetrics())


def test_tracked_runs_add_no_object_to_the_collector() -> None:
    sched = _scheduler()
    try:
        gc.collect()
        before = len(gc.get_objects())
        sched.ingest("t", _starts(1000))
        gc.collect()  # the (tenant, run_id) key tuples are atoms only: untracked here
        per_run = (len(gc.get_objects()) - before) / 1000
        run = sched.run("t", "r7")
        assert run is not None and run.units
        assert not gc.is_tracked(run) and not gc.is_tracked(run.units)
        assert per_run < 0.1  # was 3: the run, its units dict, the running unit
    finally:
        sched.close()


async def test_an_events_batch_is_applied_in_chunks_between_other_work() -> None:
    sched = _scheduler()
    seen: list[int] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            seen.append(len(sched.tracked_runs()))
            await asyncio.sleep(0)

    n = 2 * APPLY_CHUNK  # 4 chunks of run_start/unit_start events
    try:
        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0)
        accepted, rejected = await sched.apply_async("t", _batch(_starts(n)))
        stop.set()
        await watcher
        assert (accepted, rejected) == (2 * n, 0)
        assert len(sched.tracked_runs()) == n
        between = sorted({k for k in seen if 0 < k < n})
        assert len(between) >= 2  # the watcher ran between chunks, seeing partial batches
        assert all(run.node == "plan" for run in sched.tracked_runs())
    finally:
        sched.close()


async def test_a_batch_cancelled_between_chunks_is_still_applied_whole() -> None:
    sched = _scheduler()
    n = 2 * APPLY_CHUNK
    try:
        task = asyncio.ensure_future(sched.apply_async("t", _batch(_starts(n))))
        await asyncio.sleep(0)  # the first chunk is applied, the task waits a turn
        assert 0 < len(sched.tracked_runs()) < n
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(sched.tracked_runs()) == n  # no half batch for a retry to apply twice
        assert sched.metrics.events_accepted._value.get() == 2 * n
    finally:
        sched.close()


async def test_a_waiting_acquire_runs_in_its_handler_task_and_is_granted_there(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends=GPU)
    acquire = f"{server.url}/v1/backends/gpu/acquire"
    async with http.post(acquire, json={}) as resp:
        holder = await resp.json()
    queue = server.app[SCHEDULER].queue("gpu")
    tasks_before = len(asyncio.all_tasks())

    async def wait(i: int) -> dict[str, Any]:
        async with http.post(acquire, json={"run_id": f"r{i}"}) as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body

    waiting = [asyncio.ensure_future(wait(i)) for i in range(4)]
    for _ in range(500):
        if queue.depth == 4:
            break
        await asyncio.sleep(0.01)
    assert queue.depth == 4
    coros = [t.get_coro() for t in asyncio.all_tasks()]
    assert not any(getattr(c, "__qualname__", "") == "Scheduler.acquire" for c in coros)
    # per waiter: the client's task, aiohttp's connection and handler tasks; no task of ours
    assert len(asyncio.all_tasks()) - tasks_before <= 3 * 4 + 1
    lease_id = holder["lease_id"]
    for _ in range(4):  # each release grants one waiter, answered by its own handler
        async with http.post(f"{server.url}/v1/leases/{lease_id}/release") as resp:
            assert resp.status == 200
        done, pending = await asyncio.wait(waiting, timeout=5, return_when="FIRST_COMPLETED")
        assert len(done) == 1
        lease_id = done.pop().result()["lease_id"]
        waiting = list(pending)
    assert queue.depth == 0 and queue.inflight == 1
