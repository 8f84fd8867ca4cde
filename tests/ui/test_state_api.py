"""The dashboard's JSON and SVG endpoints: tenant-scoped, live queue counts, prewarm state."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hermes_sdk.prewarm.planner import PrewarmConfig
from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.admission import Lease
from hermes_sdk.server.prewarm_routes import PrewarmServerConfig, setup_prewarm
from hermes_sdk.server.scheduler import SCHEDULER
from hermes_sdk.server.ui import UI_CACHE, setup_ui
from tests.ui.feed import (
    ACME_APPS,
    ACME_KEY,
    RIVAL_APP,
    RIVAL_KEY,
    RIVAL_RUN,
    RUNS_PER_APP,
    LoopbackServer,
    config,
    feed,
    serve_app,
    start,
)


async def _get(
    http: aiohttp.ClientSession, url: str, key: str | None = None
) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.text(), resp.headers


async def _state(http: aiohttp.ClientSession, url: str, key: str) -> dict[str, Any]:
    async with http.get(f"{url}/v1/ui/state", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Cache-Control"] == "no-store"
        body: dict[str, Any] = await r.json()
        return body


async def test_state_shows_only_the_keys_tenant(
    server: LoopbackServer, http: aiohttp.ClientSession
) -> None:
    acme = await _state(http, server.url, ACME_KEY)
    rival = await _state(http, server.url, RIVAL_KEY)
    assert acme["tenant"] == "acme" and rival["tenant"] == "rival"
    assert acme["policy"] == "gittins+fair"  # two tenants configured: fair sharing is on
    assert [a["app"] for a in acme["apps"]] == sorted(ACME_APPS)
    assert all(a["runs"] == RUNS_PER_APP and a["nodes"] >= 1 for a in acme["apps"])
    assert [a["app"] for a in rival["apps"]] == [RIVAL_APP]
    assert RIVAL_APP not in str(acme) and RIVAL_RUN not in str(acme)
    assert not any(name in str(rival) for name in ("live-0", *ACME_APPS))
    assert acme["runs"]["active"] == 4 and rival["runs"]["active"] == 1
    assert {r["run_id"] for r in acme["runs"]["top"]} == {"live-0", "live-1", "live-2", "live-3"}
    remaining = [r["remaining_p50_s"] for r in acme["runs"]["top"]]
    assert remaining == sorted(remaining, reverse=True)  # most remaining demand first
    assert all(r > 0 for r in remaining)
    assert all(r["rank_s"] is not None and r["running"] for r in acme["runs"]["top"])
    assert acme["prewarm"] is None


async def test_graph_svg_is_tenant_scoped(
    server: LoopbackServer, http: aiohttp.ClientSession
) -> None:
    status, body, headers = await _get(
        http, f"{server.url}/v1/ui/apps/react_fever/graph.svg", ACME_KEY
    )
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")  # type: ignore[index]
    svg = ET.fromstring(body)
    nodes = {g.get("data-node") for g in svg.iter("{http://www.w3.org/2000/svg}g")}
    assert {"START", "END", "thought", "search"} <= nodes
    for key, app in ((ACME_KEY, RIVAL_APP), (RIVAL_KEY, "react_fever")):
        status, body, _ = await _get(http, f"{server.url}/v1/ui/apps/{app}/graph.svg", key)
        assert status == 404 and "unknown_app" in body


async def test_data_needs_a_key_but_the_page_is_public(
    server: LoopbackServer, http: aiohttp.ClientSession
) -> None:
    for path in ("/v1/ui/state", "/v1/ui/apps/react_fever/graph.svg"):
        assert (await _get(http, server.url + path))[0] == 401
        assert (await _get(http, server.url + path, "wrong-key"))[0] == 401
    status, page, headers = await _get(http, f"{server.url}/ui")
    assert status == 200 and headers["Content-Type"].startswith("text/html")  # type: ignore[index]
    csp = headers["Content-Security-Policy"]  # type: ignore[index]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert headers["Referrer-Policy"] == "no-referrer"  # type: ignore[index]
    assert '<script src="/ui/app.js"' in page and "<table" in page and "prewarm: off" in page
    assert ACME_APPS[0] not in page  # the page itself carries no data
    for asset, ctype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, text, headers = await _get(http, f"{server.url}/ui/{asset}")
        assert status == 200 and headers["Content-Type"].startswith(ctype), asset  # type: ignore[index]
        assert len(text) > 500


async def test_queues_count_inflight_and_waiting_live(
    server: LoopbackServer, http: aiohttp.ClientSession
) -> None:
    sched = server.app[SCHEDULER]
    held = [await sched.acquire("llm", tenant="acme", run_id=f"live-{i}") for i in range(2)]
    waiters = [
        asyncio.create_task(sched.acquire("llm", tenant="acme", run_id="live-2")),
        asyncio.create_task(sched.acquire("llm", tenant="rival", run_id=RIVAL_RUN)),
    ]
    cache = server.app[UI_CACHE].states
    try:
        await asyncio.sleep(0.05)  # the waiters queue
        cache.clear()  # states are cached for STATE_TTL_S
        acme = {b["backend"]: b for b in (await _state(http, server.url, ACME_KEY))["backends"]}
        rival = {b["backend"]: b for b in (await _state(http, server.url, RIVAL_KEY))["backends"]}
        assert acme["llm"] | {"waiting_yours": 0} == rival["llm"] | {"waiting_yours": 0}
        assert (acme["llm"]["inflight"], acme["llm"]["max_inflight"]) == (2, 2)
        assert acme["llm"]["waiting"] == 2
        assert acme["llm"]["waiting_yours"] == 1 and rival["llm"]["waiting_yours"] == 1
        assert acme["container"]["inflight"] == 0 and acme["container"]["waiting"] == 0
        for lease in held:
            sched.release(lease.lease_id)
        granted: list[Lease] = list(await asyncio.gather(*waiters))
        cache.clear()
        after = {b["backend"]: b for b in (await _state(http, server.url, ACME_KEY))["backends"]}
        assert (after["llm"]["inflight"], after["llm"]["waiting"]) == (2, 0)
        for lease in granted:
            sched.release(lease.lease_id)
    finally:
        for task in waiters:
            task.cancel()


async def test_prewarm_state_when_prewarm_is_on(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    app = create_app(config(tmp_path))
    setup_prewarm(app, PrewarmServerConfig(("container",), planner=PrewarmConfig()))
    srv = await serve_app(app)
    url = srv.url
    try:
        await feed(http, url)
        state = await _state(http, url, ACME_KEY)
        prewarm = state["prewarm"]
        assert prewarm is not None
        assert [b["backend"] for b in prewarm["backends"]] == ["container"]
        entry = prewarm["backends"][0]
        assert isinstance(entry["status"], str) and entry["inflight"] == 0
        assert 0.0 <= entry["need_probability"] <= 1.0
    finally:
        await srv.close()


async def test_open_server_without_keys_is_the_default_tenant(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    srv = await start(ServerConfig(port=0, store_url=f"sqlite:///{tmp_path}/open.db"))
    try:
        async with http.get(f"{srv.url}/v1/ui/state") as resp:
            assert resp.status == 200
            state = await resp.json()
        assert state["tenant"] == "default" and state["apps"] == [] and state["backends"] == []
        assert state["runs"] == {"active": 0, "top": [], "paused": [], "paused_count": 0}
    finally:
        await srv.close()


def test_setup_ui_adds_every_route() -> None:
    app = web.Application()
    setup_ui(app)
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert {"/ui", "/ui/app.js", "/ui/app.css", "/v1/ui/state"} <= paths
    assert "/v1/ui/apps/{app}/graph.svg" in paths
