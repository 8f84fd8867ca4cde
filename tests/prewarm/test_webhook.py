"""Webhook adapter against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from hermes_sdk.errors import ConfigError
from hermes_sdk.prewarm.webhook import WebhookAdapter


@dataclass
class Receiver:
    """What the fake backend controller saw; answers ``fail_first`` times with ``status``."""

    fail_first: int = 0
    status: int = 503
    gate: asyncio.Event | None = None
    bodies: list[dict[str, object]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


@asynccontextmanager
async def serve(rx: Receiver) -> AsyncIterator[str]:
    async def hook(request: web.Request) -> web.Response:
        if rx.gate is not None:
            await rx.gate.wait()
        rx.bodies.append(await request.json())
        rx.keys.append(request.headers.get("Idempotency-Key", ""))
        if len(rx.bodies) <= rx.fail_first:
            return web.Response(status=rx.status)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


async def test_retries_on_5xx_then_delivers_with_one_idempotency_key() -> None:
    rx = Receiver(fail_first=2)
    async with serve(rx) as url:
        adapter = WebhookAdapter(url, max_attempts=5, backoff_base_s=0.01)
        await adapter.prewarm("gpu", reason="P=0.9", eta_s=3.0, key="gpu:prewarm:1")
        await adapter.drain()
        await adapter.aclose()
    assert len(rx.bodies) == 3
    assert set(rx.keys) == {"gpu:prewarm:1"}
    assert rx.bodies[-1]["action"] == "prewarm" and rx.bodies[-1]["backend"] == "gpu"
    assert rx.bodies[-1]["eta_s"] == 3.0
    assert (adapter.stats.delivered, adapter.stats.retries, adapter.stats.gave_up) == (1, 2, 0)


async def test_gives_up_after_the_limit() -> None:
    rx = Receiver(fail_first=10**6, status=500)
    async with serve(rx) as url:
        adapter = WebhookAdapter(url, max_attempts=3, backoff_base_s=0.01)
        await adapter.release("gpu", key="k")
        await adapter.drain()
        await adapter.aclose()
    assert len(rx.bodies) == 3
    assert (adapter.stats.delivered, adapter.stats.gave_up, adapter.stats.attempts) == (0, 1, 3)


async def test_4xx_is_not_retried() -> None:
    rx = Receiver(fail_first=10**6, status=400)
    async with serve(rx) as url:
        adapter = WebhookAdapter(url, max_attempts=5, backoff_base_s=0.01)
        await adapter.prewarm("gpu")
        await adapter.drain()
        await adapter.aclose()
    assert len(rx.bodies) == 1 and adapter.stats.gave_up == 1


async def test_connection_refused_is_retried_and_given_up() -> None:
    adapter = WebhookAdapter("http://127.0.0.1:9/hook", max_attempts=3, backoff_base_s=0.01)
    await adapter.prewarm("gpu")
    await adapter.drain()
    await adapter.aclose()
    assert (adapter.stats.attempts, adapter.stats.gave_up) == (3, 1)


async def test_never_blocks_the_caller() -> None:
    # The receiver holds every request until the caller has its answer back: a blocking
    # prewarm() would deadlock here (wait_for turns that into a failure).
    rx = Receiver(gate=asyncio.Event())
    async with serve(rx) as url:
        adapter = WebhookAdapter(url, max_attempts=2, backoff_base_s=0.01)
        await asyncio.wait_for(adapter.prewarm("gpu", key="a"), 5.0)
        await asyncio.wait_for(adapter.release("gpu", key="b"), 5.0)
        assert adapter.pending == 2 and rx.bodies == []
        rx.gate.set()
        await adapter.drain()
        await adapter.aclose()
    assert sorted(rx.keys) == ["a", "b"]


def test_bad_url_rejected() -> None:
    with pytest.raises(ConfigError):
        WebhookAdapter("ftp://x")
