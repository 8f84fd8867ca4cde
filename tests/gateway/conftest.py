"""Fixtures: simulated engines and a real `hermes serve` app with the gateway, on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from aiohttp import web

from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine
from tests.gateway.support import FAST_ENGINE, Gw, StartEngine, StartGateway


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[StartEngine, StartGateway]]:
    """``await engine(**SimEngineConfig)`` and ``await gateway(*upstreams, **ServerConfig)``."""
    async with AsyncExitStack() as exits:

        async def engine(**fields: object) -> str:
            fields.setdefault("model", "m")
            for k, v in FAST_ENGINE.items():
                fields.setdefault(k, v)
            config = SimEngineConfig(**fields)  # type: ignore[arg-type]
            return await exits.enter_async_context(serve_sim_engine(config))

        async def gateway(
            *upstreams: UpstreamConfig, handler_cancellation: bool = True, **fields: object
        ) -> Gw:
            fields.setdefault("store_url", f"sqlite:///{tmp_path}/hermes.db")
            fields.setdefault("port", 0)
            app = create_app(ServerConfig(upstreams=upstreams, **fields))  # type: ignore[arg-type]
            runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
            await runner.setup()
            exits.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            return Gw(f"http://{host}:{port}/v1", app)

        yield engine, gateway
