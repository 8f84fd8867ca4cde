"""Remote mode against a real scheduler on loopback: events arrive, paths are learned there."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import hermes_sdk as hermes
from hermes_sdk.server import SCHEDULER, ServerConfig, create_app

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@pytest.fixture
async def scheduler(tmp_path: Path) -> AsyncIterator[tuple[web.Application, str]]:
    config = ServerConfig(port=0, store_url=f"sqlite:///{tmp_path}/server.db").with_api_keys(
        {"key-acme": "acme"}
    )
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield app, f"http://127.0.0.1:{port}"
    hermes.configure(store="memory://")  # flush and stop the recorder while the server is up
    await runner.cleanup()


@hermes.llm(backend="gpt")
async def chat(i: int) -> dict[str, object]:
    await asyncio.sleep(0)
    return {"usage": {"prompt_tokens": 10 + i, "completion_tokens": 3}}


@hermes.tool
async def lookup() -> None:
    await asyncio.sleep(0)


async def test_runs_reach_the_scheduler_under_the_keys_tenant(
    scheduler: tuple[web.Application, str],
) -> None:
    app, url = scheduler
    hermes.configure(scheduler_url=url, api_key="key-acme")
    for i in range(12):
        async with hermes.run("remote-app", deadline_s=30.0):
            await chat(i)
            if i % 3 == 0:
                await lookup()
            await chat(i)
    assert await asyncio.to_thread(hermes.flush, 20.0)
    stats = hermes.stats()
    assert stats.events_lost == 0 and stats.events_dropped == 0 and stats.events_sent > 0
    graph = app[SCHEDULER].registry.get("remote-app", "acme")
    assert graph is not None and graph.runs == 12
    probs = graph.next_stage_probs(hermes.RunState())
    assert probs == {"chat": 1.0}
    assert app[SCHEDULER].registry.get("remote-app", "default") is None  # tenant from the key


async def test_scheduler_down_never_breaks_the_app(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # closed again: nothing listens here
    hermes.configure(scheduler_url=f"http://127.0.0.1:{dead_port}", api_key="k")
    with caplog.at_level(logging.WARNING, logger="hermes_sdk.instrument"):
        for i in range(5):
            async with hermes.run("offline"):
                assert (await chat(i))["usage"]
            await asyncio.to_thread(hermes.flush, 20.0)
    stats = hermes.stats()
    assert stats.events_sent == 0 and stats.events_lost > 0 and stats.send_errors >= 1
    assert len([r for r in caplog.records if r.name == "hermes_sdk.instrument"]) == 1
    assert hermes.graph("offline").runs == 5  # still learned locally for hints


def test_configure_rejects_a_bad_scheduler_url() -> None:
    with pytest.raises(hermes.ConfigError):
        hermes.configure(scheduler_url="ftp://nope")


async def test_server_tracks_the_top_level_unit_while_a_nested_llm_runs(
    scheduler: tuple[web.Application, str],
) -> None:
    import aiohttp

    _, url = scheduler
    hermes.configure(scheduler_url=url, api_key="key-acme")
    seen: dict[str, object] = {}

    @hermes.llm(backend="gpt")
    async def inner_chat() -> None:
        assert await asyncio.to_thread(hermes.flush, 20.0)
        run = hermes.current_hints()
        assert run is not None
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{url}/v1/runs/{run.run_id}", headers={"Authorization": "Bearer key-acme"}
            ) as resp,
        ):
            seen.update(await resp.json())

    @hermes.unit
    async def step() -> None:
        await inner_chat()

    async with hermes.run("tracked"):
        await step()
    assert seen["node"] == "step" and seen["running"] is True
