"""Gateway discovery: a LangGraph app whose model calls go through the gateway, with no
``configure(scheduler_url=...)``, is learned at the gateway's server (real server, sim engine,
real LangGraph + ChatOpenAI); an explicit configuration or ``HERMES_GATEWAY_DISCOVERY=0`` wins;
``HERMES_SCHEDULER_URL`` / ``HERMES_API_KEY`` work like ``configure``'s arguments."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, TypedDict

import aiohttp
import pytest

import hermes_sdk as hermes
import hermes_sdk.instrument as hi
from hermes_sdk.instrument import runtime as rt
from hermes_sdk.instrument.gateway_discovery import bearer_key, server_url_of
from hermes_sdk.instrument.recorder import ListSink
from hermes_sdk.server import ServerConfig
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import Gw, StartEngine, StartGateway, engine_records

langchain_openai = pytest.importorskip("langchain_openai")
langgraph_graph = pytest.importorskip("langgraph.graph")
hermes_langgraph = pytest.importorskip("hermes_langgraph")

_ENV = ("HERMES_SCHEDULER_URL", "HERMES_API_KEY", "HERMES_GATEWAY_DISCOVERY")


@pytest.fixture(autouse=True)
def fresh_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (*_ENV, "HERMES_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HERMES_STORE", "memory://")
    hi.configure(store="memory://", enabled=True)
    yield
    hi.configure(store="memory://", enabled=True)


class _State(TypedDict, total=False):
    question: str
    draft: str
    answer: str


def _two_llm_nodes(llm: Any) -> Any:
    """draft -> polish: two nodes, one model call each (the second after discovery)."""

    async def draft(state: _State) -> _State:
        return {"draft": str((await llm.ainvoke(state["question"])).content)}

    async def polish(state: _State) -> _State:
        return {"answer": str((await llm.ainvoke("polish: " + state["draft"])).content)}

    g = langgraph_graph.StateGraph(_State)
    g.add_node("draft", draft)
    g.add_node("polish", polish)
    g.add_edge(langgraph_graph.START, "draft")
    g.add_edge("draft", "polish")
    g.add_edge("polish", langgraph_graph.END)
    return g.compile()


async def _invoke(gw: Gw, app: str, runs: int) -> None:
    llm = langchain_openai.ChatOpenAI(
        base_url=gw.url,
        api_key="k",
        model="m",
        max_tokens=4,
        max_retries=0,
        **hermes_langgraph.chat_openai_kwargs(),
    )
    graph = _two_llm_nodes(llm)
    for i in range(runs):
        handler = hermes_langgraph.HermesCallbackHandler(app=app)
        await graph.ainvoke({"question": f"q{i}"}, config={"callbacks": [handler]})
    assert await asyncio.to_thread(hermes.flush, 10.0)  # the sink posts to this event loop


async def _server_apps(gw: Gw, key: str = "k") -> dict[str, int]:
    base = gw.url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as s, s.get(f"{base}/v1/apps", headers=headers) as r:
        return {a["app"]: a["runs"] for a in (await r.json())["apps"]}


async def test_langgraph_runs_through_the_gateway_are_learned_at_its_server(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    engine_url = await engine()
    gw = await gateway(UpstreamConfig("up", engine_url, engine="vllm"))
    await _invoke(gw, "doc-qa", runs=4)
    assert await _server_apps(gw) == {"doc-qa": 4}  # the run under way at discovery included
    graph = gw.scheduler.registry.get("doc-qa", "default")
    assert graph is not None and {"draft", "polish"} <= set(graph.nodes)
    # The first run was announced when the gateway was found, so none of its later unit events
    # (the second node's) hit an unknown run; later runs streamed from their start.
    assert gw.scheduler.metrics.events_rejected._value.get() == 0
    assert gw.scheduler.metrics.events_accepted._value.get() > 4 * 2
    assert hermes.graph("doc-qa").runs == 4  # embedded learning goes on as before
    # Once the server tracks the runs, the gateway records each call as a unit of its run.
    assert sum(c.run_id is not None for c in gw.gateway.calls) == 8
    seen = await engine_records(engine_url)
    assert len(seen) == 8 and all(isinstance(r["priority"], int) for r in seen)


async def test_an_explicit_configuration_wins(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    gw = await gateway(UpstreamConfig("up", await engine(), engine="vllm"))
    sink = ListSink()
    hi.configure(sink=sink)
    await _invoke(gw, "doc-qa", runs=2)
    assert await _server_apps(gw) == {}
    assert sum(e["type"] == "run_end" for e in sink.events) == 2


async def test_discovery_can_be_turned_off(
    stack: tuple[StartEngine, StartGateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, gateway = stack
    gw = await gateway(UpstreamConfig("up", await engine(), engine="vllm"))
    monkeypatch.setenv("HERMES_GATEWAY_DISCOVERY", "0")
    await _invoke(gw, "doc-qa", runs=2)
    assert await _server_apps(gw) == {}
    assert hermes.graph("doc-qa").runs == 2


async def test_configure_reads_the_scheduler_url_and_key_from_the_environment(
    stack: tuple[StartEngine, StartGateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, gateway = stack
    keys = ServerConfig().with_api_keys({"key-from-env": "team"}).api_keys
    gw = await gateway(UpstreamConfig("up", await engine(), engine="vllm"), api_keys=keys)
    base = gw.url.removesuffix("/v1")
    monkeypatch.setenv("HERMES_SCHEDULER_URL", base)
    monkeypatch.setenv("HERMES_API_KEY", "key-from-env")
    hermes.configure()
    assert rt.RUNTIME.remote

    @hermes.tool(backend="search")
    def search(q: str) -> str:
        return q

    with hermes.run(app="env-app"):
        search("what is hermes?")
    assert await asyncio.to_thread(hermes.flush, 10.0)
    assert await _server_apps(gw, "key-from-env") == {"env-app": 1}  # the key's tenant


def test_the_environment_configures_remote_mode_at_import() -> None:
    code = (
        "import hermes_sdk.instrument.runtime as rt\n"
        "from hermes_sdk.client.admission import admission_client\n"
        "print(rt.RUNTIME.remote, admission_client() is not None)\n"
    )
    env = {**os.environ, "HERMES_SCHEDULER_URL": "http://127.0.0.1:9", "HERMES_API_KEY": "k"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["True", "True"]
    env["HERMES_SCHEDULER_URL"] = "not-a-url"  # never breaks the import: embedded, one warning
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]
    assert "HERMES_SCHEDULER_URL" in out.stderr


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("http://127.0.0.1:8700/v1/chat/completions", "http://127.0.0.1:8700"),
        ("https://h.example/hermes/v1/embeddings", "https://h.example/hermes"),
        ("http://h:1/chat/completions", None),
        ("ftp://h/v1/chat/completions", None),
    ],
)
def test_server_url_of_a_gateway_request(url: str, server: str | None) -> None:
    assert server_url_of(url) == server


def test_bearer_key() -> None:
    assert bearer_key("Bearer k1") == "k1"
    assert bearer_key("bearer  k2 ") == "k2"
    assert bearer_key("Basic abc") is None
    assert bearer_key(None) is None


async def test_the_drop_in_client_is_learned_at_the_gateways_server(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    openai = pytest.importorskip("openai")
    engine, gateway = stack
    gw = await gateway(UpstreamConfig("up", await engine(), engine="vllm"))
    client = hermes.wrap(openai.AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0))
    for i in range(3):
        async with hermes.run(app="wrapped"):
            for step in ("plan", "answer"):
                await client.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": f"{step} {i}"}],
                    max_tokens=3,
                    hermes_unit=step,
                )
    await client.close()
    assert await asyncio.to_thread(hermes.flush, 10.0)
    assert await _server_apps(gw) == {"wrapped": 3}
    graph = gw.scheduler.registry.get("wrapped", "default")
    assert graph is not None and {"plan", "answer"} <= set(graph.nodes)
    assert gw.scheduler.metrics.events_rejected._value.get() == 0
