"""Remote mode: a traced graph's runs reach a real scheduler service, which learns the graph."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hermes_langgraph import HermesCallbackHandler
from lg_apps import ScriptedChatModel, map_reduce_graph, subgraph_graph

import hermes_sdk.instrument as hi
from hermes_sdk.client.scheduler import SchedulerClient
from hermes_sdk.server import ServerConfig, create_app

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@pytest.fixture
async def scheduler_url(tmp_path: Path) -> AsyncIterator[str]:
    app = create_app(ServerConfig(port=0, store_url=f"sqlite:///{tmp_path}/h.db"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    hi.configure(store="memory://")
    await runner.cleanup()


async def test_runs_and_sub_runs_reach_the_scheduler(scheduler_url: str) -> None:
    hi.configure(scheduler_url=scheduler_url, flush_interval_s=0.01)
    handler = HermesCallbackHandler(app="mr-remote")
    graph = map_reduce_graph(ScriptedChatModel(delay_s=0.001))
    for width in (2, 3, 2):
        await graph.ainvoke({"width": width, "summaries": []}, {"callbacks": [handler]})
    nested = HermesCallbackHandler(app="doc-remote")
    await subgraph_graph().ainvoke(
        {"question": "q", "drafts": 0, "answer": ""}, {"callbacks": [nested]}
    )
    assert await asyncio.to_thread(hi.flush, 5.0)
    async with SchedulerClient(scheduler_url, connect_timeout_s=5.0) as client:
        apps = {a["app"]: a["runs"] for a in await client.apps()}
        graph_doc = json.loads(await client.graph("mr-remote"))
    assert apps == {"mr-remote": 3, "doc-remote": 1, "doc-remote/research": 1}
    assert "summarise" in json.dumps(graph_doc) and "combine" in json.dumps(graph_doc)
    stats = hi.stats()
    assert stats.events_lost == 0 and stats.send_errors == 0 and stats.events_sent > 0
    assert handler.errors == 0 and nested.errors == 0


async def test_a_paused_run_shows_as_paused_and_waits_in_no_queue(scheduler_url: str) -> None:
    from hitl_apps import START_INPUT, hitl_graph
    from langgraph.types import Command

    hi.configure(scheduler_url=scheduler_url, flush_interval_s=0.01)
    handler = HermesCallbackHandler(app="hitl-remote")
    graph = hitl_graph()
    cfg: dict[str, object] = {"configurable": {"thread_id": "r1"}, "callbacks": [handler]}
    await graph.ainvoke(START_INPUT, cfg)  # type: ignore[arg-type]
    assert await asyncio.to_thread(hi.flush, 5.0)
    async with (
        SchedulerClient(scheduler_url, connect_timeout_s=5.0) as client,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{scheduler_url}/v1/ui/state") as resp:
            state = await resp.json()
        async with http.get(f"{scheduler_url}/metrics") as resp:
            metrics = await resp.text()
        (paused,) = state["runs"]["paused"]
        assert paused["app"] == "hitl-remote" and paused["node"] == "ask"
        assert state["runs"]["active"] == 0 and state["runs"]["paused_count"] == 1
        assert all(b["waiting"] == 0 for b in state["backends"])
        assert "hermes_runs_paused 1.0" in metrics and "hermes_runs_active 0.0" in metrics
        await graph.ainvoke(Command(resume="yes"), cfg)  # type: ignore[arg-type]
        assert await asyncio.to_thread(hi.flush, 5.0)
        for _ in range(50):  # the dashboard state is cached for up to STATE_TTL_S
            async with http.get(f"{scheduler_url}/v1/ui/state") as resp:
                after = await resp.json()
            if not after["runs"]["paused"]:
                break
            await asyncio.sleep(0.1)
        async with http.get(f"{scheduler_url}/metrics") as resp:
            metrics = await resp.text()
        assert after["runs"]["paused"] == [] and after["runs"]["active"] == 0
        assert "hermes_runs_paused 0.0" in metrics
        assert "hermes_run_paused_seconds_count 1.0" in metrics
        apps = {a["app"]: a["runs"] for a in await client.apps()}
        doc = json.loads(await client.graph("hitl-remote"))
    assert apps["hitl-remote"] == 1  # one run for the thread, learned by the scheduler
    assert "fin" in json.dumps(doc)
    assert handler.errors == 0
