"""Prewarm in the scheduler service: a run's state in the server triggers a webhook prewarm."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import hermes_sdk as hermes
from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument.prewarm_hooks import PrewarmNotice, remove_prewarm
from hermes_sdk.prewarm.listener import PrewarmListener
from hermes_sdk.prewarm.planner import PrewarmConfig
from hermes_sdk.server import BackendConfig, ServerConfig, create_app
from hermes_sdk.server.prewarm_routes import PrewarmServerConfig, setup_prewarm
from hermes_sdk.server.scheduler import SCHEDULER

from .builders import stage

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def test_running_app_state_prewarms_its_next_backend(tmp_path: Path) -> None:
    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({})

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    hook_runner, hook_url = await _serve(hook_app)

    config = ServerConfig(
        store_url=f"sqlite:///{tmp_path}/h.db", port=0, backends={"box": BackendConfig(4)}
    )
    app = create_app(config)
    prewarm = PrewarmServerConfig(
        backends=("box",),
        webhooks={"box": f"{hook_url}/hook"},
        planner=PrewarmConfig(default_cold_start_s=1.0, c_delay=50.0),
        poll_interval_s=0.05,
    )
    setup_prewarm(app, prewarm)
    for i in range(20):
        path = (stage("plan", 1.5, "llm"), stage("test", 0.5, "box", "container"))
        app[SCHEDULER].registry.observe(RunPath("coder", path, run_id=f"old{i}"))
    runner, url = await _serve(app)
    notices: list[tuple[str, str]] = []

    def on_box(notice: PrewarmNotice) -> None:
        notices.append((notice.backend, notice.action))

    hermes.on_prewarm("box", on_box)
    listener = PrewarmListener(url, wait_s=2.0)
    listener.start()
    try:
        for _ in range(100):  # the listener's first answer fixes its position
            if listener.seq is not None:
                break
            await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as http:
            events = [
                {"type": "run_start", "run_id": "r1", "app": "coder", "ts": 0.0},
                {"type": "unit_start", "run_id": "r1", "unit_id": "1", "node": "plan",
                 "kind": "llm", "backend": "llm", "ts": 0.0},
            ]  # fmt: skip
            async with http.post(f"{url}/v1/events", json={"events": events}) as resp:
                assert resp.status == 200
            for _ in range(200):  # the plan stage lasts ~1.5 s; box takes ~1 s to start
                if received:
                    break
                await asyncio.sleep(0.05)
            assert received and received[0]["action"] == "prewarm"
            assert received[0]["backend"] == "box"
            async with http.get(f"{url}/v1/prewarm") as resp:
                state = await resp.json()
            assert state["backends"]["box"]["status"] == "starting"
            assert state["signals"][0]["action"] == "prewarm"
            report = {"backend": "box", "event": "ready", "startup_s": 0.8}
            async with http.post(f"{url}/v1/prewarm/report", json=report) as resp:
                assert resp.status == 200
            async with http.get(f"{url}/v1/prewarm") as resp:
                state = await resp.json()
            assert state["backends"]["box"]["status"] == "warm"
            assert state["backends"]["box"]["cold_start_s"] == pytest.approx(0.8)
            async with http.get(f"{url}/metrics") as resp:
                text = await resp.text()
            assert 'hermes_prewarm_prewarms{backend="box"} 1.0' in text
            async with http.get(f"{url}/v1/prewarm/signals?after=0") as resp:
                data = await resp.json()
            assert data["seq"] >= 1 and data["signals"][0]["backend"] == "box"
            async with http.get(f"{url}/v1/prewarm/signals?after=-1") as resp:
                assert resp.status == 400
            bad = {"backend": "nope", "event": "ready"}
            async with http.post(f"{url}/v1/prewarm/report", json=bad) as resp:
                assert resp.status == 400
            for _ in range(200):  # the app process's callback heard it through the listener
                if notices:
                    break
                await asyncio.sleep(0.05)
            assert notices == [("box", "prewarm")]
    finally:
        remove_prewarm("box", on_box)
        await listener.aclose()
        await runner.cleanup()
        await hook_runner.cleanup()
