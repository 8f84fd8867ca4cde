"""SchedulerClient / SyncSchedulerClient / admit() / HttpEventSink against real loopback servers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from server.conftest import Server, StartServer

from hermes_sdk.client.admission import admit, configure_admission
from hermes_sdk.client.events import HttpEventSink
from hermes_sdk.client.scheduler import SchedulerClient, SyncSchedulerClient
from hermes_sdk.errors import InvalidRequest, SchedulerUnavailable
from hermes_sdk.server import SCHEDULER, BackendConfig

GPU = {"gpu": BackendConfig(max_inflight=1)}
LIVE_CONNECT_S = 5.0
"""For a client of a live test server: the default 50 ms connect timeout (fail open fast) can
expire on a loaded 2-core CI machine before this process's event loop runs the connect, and a
failed-open call (grant None) is not what these tests check; the fail-open tests keep it."""
PATH = {"app": "qa", "stages": [{"node": "plan", "kind": "llm", "calls": [{"service_s": 1.0}]}]}


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _inflight(server: Server) -> int:
    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as c:
        return int((await c.backends())[0]["inflight"])


@pytest.fixture
async def garbage_url() -> AsyncIterator[str]:
    """A server answering every request with HTML (200) or a 500, alternating."""
    hits = {"n": 0}

    async def junk(request: web.Request) -> web.Response:
        hits["n"] += 1
        if hits["n"] % 2:
            return web.Response(text="<html>hello</html>", content_type="text/html")
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", junk)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_async_slot_holds_and_releases(serve: StartServer) -> None:
    server = await serve(backends=GPU)
    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as client:
        async with client.slot("gpu", run_id="r1", app="qa") as grant:
            assert grant is not None and grant.backend == "gpu"
            assert await _inflight(server) == 1
        assert await _inflight(server) == 0


async def test_async_slots_queue_behind_each_other(serve: StartServer) -> None:
    server = await serve(backends=GPU)
    order: list[str] = []

    async def unit(name: str, client: SchedulerClient) -> None:
        async with client.slot("gpu", run_id=name):
            order.append(f"{name}+")
            await asyncio.sleep(0.02)
            order.append(f"{name}-")

    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as client:
        await asyncio.gather(*(unit(f"u{i}", client) for i in range(4)))
    # max_inflight=1: every unit leaves before the next one enters.
    assert all(order[i][:-1] == order[i + 1][:-1] for i in range(0, len(order), 2))


async def test_runs_events_hints_and_graph(serve: StartServer) -> None:
    server = await serve(backends=GPU)
    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as client:
        run_id = await client.start_run("qa", deadline_s=20)
        accepted = await client.send_events(
            [{"type": "unit_start", "run_id": run_id, "unit_id": "1", "node": "plan"}]
        )
        assert accepted == 1
        hints = await client.hints(run_id)
        assert hints["app"] == "qa" and hints["node"] == "plan"
        await client.end_run(run_id, path=PATH)
        assert [a["app"] for a in await client.apps()] == ["qa"]
        assert "flowchart" in await client.graph("qa", format="mermaid")
        with pytest.raises(InvalidRequest, match="unknown_run"):
            await client.hints("nope")


async def test_sync_facade_and_admit(serve: StartServer) -> None:
    server = await serve(backends=GPU)
    sync = SyncSchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S)

    def blocking() -> tuple[bool, int]:
        with sync.slot("gpu", run_id="r") as grant:
            inside = sync.backends()[0]["inflight"]
        return grant is not None, inside

    try:
        assert await asyncio.to_thread(blocking) == (True, 1)
        assert await _inflight(server) == 0
    finally:
        sync.close()

    async with admit("gpu") as unconfigured:
        assert unconfigured.grant is None
    configure_admission(server.url)
    try:
        async with admit("gpu", run_id="r2") as adm:
            assert adm.grant is not None
            assert await _inflight(server) == 1
        assert await _inflight(server) == 0

        def sync_admit() -> bool:
            with admit("gpu") as a:
                return a.grant is not None

        assert await asyncio.to_thread(sync_admit)
        assert await _inflight(server) == 0
    finally:
        configure_admission(None)


async def test_down_scheduler_fails_open_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hermes_sdk.client")
    async with SchedulerClient(_closed_port_url()) as client:
        for _ in range(10):
            async with client.slot("gpu", run_id="r") as grant:
                assert grant is None
        assert client.breaker.skipped > 0, "the breaker should stop trying after a few failures"
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1


async def test_garbage_answers_fail_open(
    garbage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hermes_sdk.client")
    async with SchedulerClient(garbage_url) as client:
        for _ in range(2):
            async with client.slot("gpu") as grant:
                assert grant is None
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


async def test_recovery_is_logged_and_admission_resumes(
    serve: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hermes_sdk.client")
    server = await serve(backends=GPU)
    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as client:
        client.breaker.failure("simulated outage")
        async with client.slot("gpu") as grant:
            assert grant is not None
    assert client.breaker.in_outage is False
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_http_event_sink(serve: StartServer, garbage_url: str) -> None:
    server = await serve()
    sink = HttpEventSink(server.url)
    events: list[dict[str, object]] = [
        {"type": "run_start", "run_id": "r", "app": "qa", "ts": 1.0},
        {"type": "run_end", "run_id": "r", "failed": False, "path": PATH},
    ]
    await asyncio.to_thread(sink.send, events)
    assert sink.sent == 2
    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as client:
        assert [a["app"] for a in await client.apps()] == ["qa"]
    bad: list[dict[str, object]] = [{"type": "unit_end", "run_id": "r", "service_s": -1}]
    with pytest.raises(InvalidRequest):
        await asyncio.to_thread(sink.send, bad)
    with pytest.raises(SchedulerUnavailable):
        await asyncio.to_thread(HttpEventSink(_closed_port_url(), timeout_s=0.5).send, events)
    with pytest.raises(SchedulerUnavailable):
        await asyncio.to_thread(HttpEventSink(garbage_url).send, events)
    sink.close()


async def test_a_held_slot_is_renewed_past_its_lease(serve: StartServer) -> None:
    server = await serve(
        backends={"gpu": BackendConfig(max_inflight=1, lease_s=0.3)}, sync_interval_s=0.05
    )
    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as client:
        async with client.slot("gpu") as grant:
            assert grant is not None and grant.lease_s == 0.3
            await asyncio.sleep(1.0)  # > 3 lease lifetimes; housekeeping runs every 50 ms
            assert await _inflight(server) == 1, "a renewed lease is not reclaimed"
        assert await _inflight(server) == 0
    sched = server.app[SCHEDULER]
    assert sched.queue("gpu").reclaimed == 0


async def test_graph_of_an_app_whose_name_has_a_slash(serve: StartServer) -> None:
    server = await serve(backends=GPU)
    async with SchedulerClient(server.url, connect_timeout_s=LIVE_CONNECT_S) as client:
        run_id = await client.start_run("qa/sub graph")
        await client.end_run(run_id, path={**PATH, "app": "qa/sub graph"})
        assert [a["app"] for a in await client.apps()] == ["qa/sub graph"]
        assert json.loads(await client.graph("qa/sub graph"))["app"] == "qa/sub graph"
