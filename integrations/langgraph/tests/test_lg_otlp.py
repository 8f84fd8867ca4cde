"""A second instrumentation learns the same graph: OpenInference's LangChain instrumentation on
real LangGraph apps, exported over OTLP/HTTP protobuf to a real scheduler's ``/v1/traces``, learns
the graph the Hermes callback learns from the very same invocations."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hermes_langgraph import HermesCallbackHandler
from langgraph.graph.state import CompiledStateGraph
from lg_apps import ScriptedChatModel, map_reduce_graph, react_graph, react_input
from openinference.instrumentation.langchain import LangChainInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from hermes_sdk.graph.pdgraph import PDGraph
from hermes_sdk.server import ServerConfig, create_app

# the tenant is a plain string request key on purpose (see tests/server/conftest.py)
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@pytest.fixture
async def scheduler(tmp_path: Any) -> AsyncIterator[str]:
    """A real scheduler app on a loopback port (same event loop as the graphs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServerConfig(port=port, store_url=f"sqlite:///{tmp_path}/h.db"))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def edges(doc: dict[str, Any]) -> dict[tuple[str, str, int], float]:
    return {
        (e["source"], e["target"], v["visit"]): v["p"] for e in doc["edges"] for v in e["by_visit"]
    }


async def traced_runs(
    url: str, service: str, graph: CompiledStateGraph[Any, Any, Any, Any], inputs: list[Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``graph`` on ``inputs`` under both instrumentations; (callback graph, OTLP graph)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    handler = HermesCallbackHandler(app=service)
    try:
        for x in inputs:
            await graph.ainvoke(x, config={"callbacks": [handler]})
        await asyncio.to_thread(provider.force_flush)
    finally:
        instrumentor.uninstrument()
        await asyncio.to_thread(provider.shutdown)
    assert handler.errors == 0
    ours = PDGraph(service)
    for path in handler.recent_paths:
        ours.observe(path)
    async with aiohttp.ClientSession() as http:
        for _ in range(100):  # the exporter posted from its thread; the server answers in order
            async with http.get(f"{url}/v1/apps/{service}/graph") as r:
                if r.status == 200 and (doc := await r.json())["runs"] == len(inputs):
                    break
            await asyncio.sleep(0.05)
    return ours.to_dict(include_samples=False), doc


def assert_same_graph(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert theirs["runs"] == ours["runs"] and theirs["failed_runs"] == ours["failed_runs"] == 0
    assert {n["id"]: n["kind"] for n in theirs["nodes"]} == {
        n["id"]: n["kind"] for n in ours["nodes"]
    }
    mine, other = edges(ours), edges(theirs)
    assert set(other) == set(mine)
    for key, p in mine.items():
        assert other[key] == pytest.approx(p, abs=1e-9), key
    fan_ours = {n["id"]: n["fanout"]["mean"] for n in ours["nodes"]}
    assert {n["id"]: n["fanout"]["mean"] for n in theirs["nodes"]} == fan_ours


async def test_react_loop_learned_alike(scheduler: str) -> None:
    rng = random.Random(3)
    inputs = [react_input(rng.choice([0, 1, 1, 2, 3])) for _ in range(30)]
    ours, theirs = await traced_runs(scheduler, "react", react_graph(ScriptedChatModel()), inputs)
    kinds = {n["id"]: n["kind"] for n in ours["nodes"]}
    assert kinds == {"agent": "llm", "tools": "tool"}
    assert max(k[2] for k in edges(ours) if k[0] == "agent") >= 3  # the loop went round
    assert_same_graph(ours, theirs)


async def test_map_reduce_fan_out_learned_alike(scheduler: str) -> None:
    inputs = [{"width": w, "topic": "t"} for w in (2, 3, 3, 4)]
    graph = map_reduce_graph(ScriptedChatModel())
    ours, theirs = await traced_runs(scheduler, "map-reduce", graph, inputs)
    assert "summarise" in {n["id"] for n in ours["nodes"]}
    assert_same_graph(ours, theirs)
