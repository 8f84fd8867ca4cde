"""Fixtures: a real scheduler server on a loopback port, and a raw HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hermes_sdk.server import ServerConfig, create_app


class Server:
    """A running scheduler app and its base URL."""

    def __init__(self, app: web.Application, runner: web.AppRunner, url: str) -> None:
        self.app = app
        self.runner = runner
        self.url = url


StartServer = Callable[..., Awaitable[Server]]


def pytest_configure(config: pytest.Config) -> None:
    # The tenant is a plain string request key on purpose (the gateway reads it as one).
    config.addinivalue_line("filterwarnings", "ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def start_server(config: ServerConfig) -> Server:
    """Run ``create_app(config)`` on 127.0.0.1 with a free port."""
    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return Server(app, runner, f"http://127.0.0.1:{port}")


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[StartServer]:
    """``await serve(**config_fields)`` starts a server; all are stopped after the test."""
    started: list[Server] = []

    async def _start(**fields: object) -> Server:
        fields.setdefault("store_url", f"sqlite:///{tmp_path}/hermes-{len(started)}.db")
        fields.setdefault("port", 0)
        server = await start_server(ServerConfig(**fields))  # type: ignore[arg-type]
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for raw requests."""
    async with aiohttp.ClientSession() as session:
        yield session
