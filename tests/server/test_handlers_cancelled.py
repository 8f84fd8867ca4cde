"""An app served with aiohttp's ``handler_cancellation`` (as ``hermes serve`` does) marks itself
``HANDLERS_CANCELLED``: its waiting acquires are not watched by the gone-client sweep, and a
client that leaves still leaves the queue at once (aiohttp cancels its handler) and is never
granted a slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hermes_sdk.server import BackendConfig, ServerConfig, create_app, leases
from hermes_sdk.server.leases import HANDLERS_CANCELLED


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    config = ServerConfig(
        store_url=f"sqlite:///{tmp_path}/h.db", port=0, backends={"gpu": BackendConfig(1)}
    )
    app = create_app(config)
    app[HANDLERS_CANCELLED] = True
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _backend(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    async with http.get(f"{url}/v1/backends") as resp:
        backend: dict[str, int] = (await resp.json())["backends"][0]
        return backend


async def test_a_gone_client_leaves_without_a_sweep(url: str) -> None:
    acquire = f"{url}/v1/backends/gpu/acquire"
    async with aiohttp.ClientSession() as http:
        async with http.post(acquire, json={}) as resp:
            holder = await resp.json()
        gone = aiohttp.ClientSession()
        waits = [asyncio.ensure_future(gone.post(acquire, json={})) for _ in range(3)]
        for _ in range(300):
            if (await _backend(http, url))["waiting"] == 3:
                break
            await asyncio.sleep(0.01)
        assert (await _backend(http, url))["waiting"] == 3
        watch = leases._WATCHES.get(asyncio.get_running_loop())
        assert watch is None or not watch.waiting  # nobody sweeps these waiters
        for task in waits:
            task.cancel()
        await gone.close()  # the connections close: aiohttp cancels the three handlers
        for _ in range(300):
            if (await _backend(http, url))["waiting"] == 0:
                break
            await asyncio.sleep(0.01)
        assert (await _backend(http, url))["waiting"] == 0
        async with http.post(f"{url}/v1/leases/{holder['lease_id']}/release") as resp:
            assert resp.status == 200
        assert (await _backend(http, url))["inflight"] == 0  # no slot went to a gone client


async def test_a_waiter_is_still_granted(url: str) -> None:
    acquire = f"{url}/v1/backends/gpu/acquire"
    async with aiohttp.ClientSession() as http:
        async with http.post(acquire, json={}) as resp:
            first = await resp.json()
        waiting = asyncio.ensure_future(http.post(acquire, json={"timeout_s": 20}))
        for _ in range(300):
            if (await _backend(http, url))["waiting"] == 1:
                break
            await asyncio.sleep(0.01)
        async with http.post(f"{url}/v1/leases/{first['lease_id']}/release") as resp:
            assert resp.status == 200
        async with await waiting as resp:
            assert resp.status == 200
            assert (await resp.json())["lease_id"] != first["lease_id"]
