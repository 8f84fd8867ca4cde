"""A wrapped client behind the Hermes gateway learns service, not the time it queued for a slot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from openai import AsyncOpenAI

import hermes_sdk as hermes
from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

MSGS = [{"role": "user", "content": "hi"}]


async def test_gateway_queue_wait_is_not_learned_as_service(tmp_path: Path) -> None:
    engine_config = SimEngineConfig(model="m", step_base_s=0.002, prefill_per_token_s=0.0)
    async with serve_sim_engine(engine_config) as engine_url:
        upstream = UpstreamConfig("up", engine_url, engine="vllm", max_inflight=1)
        config = ServerConfig(upstreams=(upstream,), store_url=f"sqlite:///{tmp_path}/h.db")
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            raw = AsyncOpenAI(base_url=f"http://{host}:{port}/v1", api_key="-", max_retries=0)
            client = hermes.wrap(raw)
            blocker = asyncio.create_task(
                client.chat.completions.create(model="m", messages=MSGS, max_tokens=100)
            )  # outside any run: holds the only slot for ~0.2 s
            await asyncio.sleep(0.05)
            async with hermes.run(app="behind-gateway") as run:
                out = await client.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
            await blocker
            await client.close()
        finally:
            await runner.cleanup()
    assert out.usage is not None and out.usage.completion_tokens == 2
    (unit,) = run.units
    wall_s = (unit.end_ns - unit.start_ns) / 1e9  # type: ignore[operator]
    assert unit.wait_ns > 0.05e9  # waited behind the blocker at the gateway
    assert unit.service_s is not None and unit.service_s < wall_s - 0.05
    assert run.path is not None and run.path.stages[0].service_s == unit.service_s
