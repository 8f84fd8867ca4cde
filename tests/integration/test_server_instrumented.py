"""An instrumented app in remote mode: the server tracks its runs and learns its graph."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from server.conftest import Server, start_server

import hermes_sdk as hermes
from hermes_sdk.client.scheduler import SchedulerClient
from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.server.metrics import METRICS

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


def stats_events(runs: int) -> int:
    """Events per run: run_start, 3 unit starts and ends, run_end."""
    return runs * (1 + 3 * 2 + 1)


@pytest.fixture
def reset_hermes() -> Iterator[None]:
    yield
    hermes.configure(store="memory://")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    config = ServerConfig(
        port=0, store_url=f"sqlite:///{tmp_path}/h.db", backends={"gpu": BackendConfig(2)}
    )
    running = await start_server(config)
    yield running
    await running.runner.cleanup()


async def test_decorated_app_events_reach_the_server(server: Server, reset_hermes: None) -> None:
    hermes.configure(scheduler_url=server.url, flush_interval_s=0.01)
    seen_nodes: list[str] = []

    @hermes.llm(backend="gpu")
    async def plan(q: str) -> str:
        await asyncio.sleep(0.01)
        return q.upper()

    @hermes.tool()
    async def search(q: str) -> str:
        await asyncio.sleep(0.005)
        return q[::-1]

    async with SchedulerClient(server.url, connect_timeout_s=5.0) as client:
        for i in range(3):
            async with hermes.run("doc-qa", run_id=f"run-{i}", deadline_s=60):
                await plan("q")
                await asyncio.gather(search("a"), search("b"))  # a fan-out stage of width 2
                await asyncio.to_thread(hermes.flush, 2.0)
                state = await client.hints(f"run-{i}")
                seen_nodes.append(state["node"])
        await asyncio.to_thread(hermes.flush, 2.0)
        apps = await client.apps()
        graph = await client.graph("doc-qa")
    assert seen_nodes == ["search"] * 3, "the server follows the run from its unit events"
    assert apps == [{"app": "doc-qa", "runs": 3}]
    assert '"plan"' in graph and '"search"' in graph
    metrics = server.app[METRICS]
    assert metrics.events_rejected._value.get() == 0
    assert metrics.events_accepted._value.get() == stats_events(3)
    stats = hermes.stats()
    assert stats.events_lost == 0 and stats.send_errors == 0 and stats.events_sent > 0
