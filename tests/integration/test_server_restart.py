"""Kill `hermes serve` mid-run: the app is unaffected; a restart loses nothing acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import hermes_sdk as hermes
from hermes_sdk.client.events import HttpEventSink
from hermes_sdk.client.scheduler import SchedulerClient
from tests.reliability.harness import ServerProcess

pytestmark = pytest.mark.slow


def _path(i: int) -> dict[str, object]:
    return {
        "app": "doc-qa",
        "stages": [
            {"node": "plan", "kind": "llm", "calls": [{"service_s": 0.5 + i % 3}]},
            {"node": "search", "kind": "tool", "calls": [{"service_s": 0.2}, {"service_s": 0.3}]},
        ],
    }


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for p in started:
        p.stop()


async def _graph(url: str) -> str:
    async with SchedulerClient(url, connect_timeout_s=1.0) as c:
        return await c.graph("doc-qa")


async def test_kill_mid_run_then_restart_keeps_every_acknowledged_path(
    tmp_path: Path, procs: list[ServerProcess]
) -> None:
    store = f"sqlite:///{tmp_path}/hermes.db"
    first = ServerProcess("--store", store, "--backend", "gpu=1")
    procs.append(first)
    sink = HttpEventSink(first.url)
    for i in range(20):
        await asyncio.to_thread(
            sink.send, [{"type": "run_end", "run_id": f"r{i}", "failed": False, "path": _path(i)}]
        )
    before = await _graph(first.url)

    # A decorated app, sending its events to the scheduler and asking it for slots.
    hermes.configure(scheduler_url=first.url, flush_interval_s=0.01)
    client = SchedulerClient(first.url, connect_timeout_s=5.0)  # loaded CI: not 50 ms

    @hermes.llm(backend="gpu")
    async def plan(q: str) -> str:
        async with client.slot("gpu"):
            await asyncio.sleep(0.01)
        return q.upper()

    @hermes.tool()
    async def search(q: str) -> str:
        async with client.slot("gpu"):
            await asyncio.sleep(0.01)
        return q[::-1]

    try:
        async with hermes.run("doc-qa"):
            a = await plan("hello")
            hermes.flush(2.0)
            first.kill()  # mid-run: no goodbye, nothing flushed
            b = await search(a)
            c = await plan(b)
        assert c == "OLLEH"
        hermes.flush(2.0)
    finally:
        await client.close()
        hermes.configure()

    second = ServerProcess("--store", store, "--backend", "gpu=1")
    procs.append(second)
    after = await _graph(second.url)
    assert after == before
