"""One conformance suite for every prewarm adapter (webhook, subprocess pool, callbacks).

The contract: ``prewarm``/``release`` return without waiting for the backend (each harness holds
the backend's side behind a gate that opens only after the call returned), the backend ends up
warm after prewarm and cold after release, repeated signals are idempotent, unknown backends
and releases of cold backends are harmless, and ``aclose`` cleans up.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

import hermes_sdk as hermes
from hermes_sdk.instrument.prewarm_hooks import PrewarmNotice, remove_prewarm
from hermes_sdk.prewarm.adapters import PrewarmAdapter, deliver
from hermes_sdk.prewarm.callbacks import CallbackAdapter
from hermes_sdk.prewarm.planner import PrewarmSignal
from hermes_sdk.prewarm.subprocess_pool import ProcessSpec, SubprocessPoolAdapter
from hermes_sdk.prewarm.webhook import WebhookAdapter

from .test_subprocess_pool import free_port, pid_alive


@dataclass
class Harness:
    adapter: PrewarmAdapter
    gate: asyncio.Event
    state: dict[str, str]
    """backend -> "warm" | "cold" as the backend side saw it."""

    async def settle(self) -> None:
        """Let background work finish (the gate must be open)."""
        drain = getattr(self.adapter, "drain", None)
        if drain is not None:
            await drain()
        if isinstance(self.adapter, SubprocessPoolAdapter):
            for backend in list(self.state):
                if self.adapter.pid(backend) is not None:
                    await self.adapter.acquire(backend)
                    self.state[backend] = "warm"
                else:
                    self.state[backend] = "cold"


async def webhook_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    gate = asyncio.Event()
    state: dict[str, str] = {}

    async def hook(request: web.Request) -> web.Response:
        await gate.wait()
        body = await request.json()
        state[body["backend"]] = "warm" if body["action"] == "prewarm" else "cold"
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    adapter = WebhookAdapter(f"http://{host}:{port}/hook", backoff_base_s=0.01)
    try:
        yield Harness(adapter, gate, state)
    finally:
        await adapter.aclose()
        await runner.cleanup()


async def subprocess_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    gate = asyncio.Event()
    flag = tmp_path / "go"
    port = free_port()
    script = (
        "import os, socket, time\n"
        f"while not os.path.exists({str(flag)!r}): time.sleep(0.01)\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port}))\n"
        "s.listen()\n"
        "time.sleep(600)\n"
    )
    spec = ProcessSpec(argv=(sys.executable, "-c", script), ready_tcp=("127.0.0.1", port))
    adapter = SubprocessPoolAdapter({"gpu": spec})
    state: dict[str, str] = {"gpu": "cold"}

    async def open_gate() -> None:
        await gate.wait()
        flag.touch()

    opener = asyncio.get_running_loop().create_task(open_gate())
    try:
        yield Harness(adapter, gate, state)
    finally:
        opener.cancel()
        await adapter.aclose()


async def callback_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    gate = asyncio.Event()
    opened = threading.Event()
    state: dict[str, str] = {}
    done: list[int] = []

    def on_signal(notice: PrewarmNotice) -> None:
        opened.wait(10.0)
        state[notice.backend] = "warm" if notice.action == "prewarm" else "cold"
        done.append(1)

    hermes.on_prewarm("gpu", on_signal, releases=True)
    adapter = CallbackAdapter()

    async def open_gate() -> None:
        await gate.wait()
        opened.set()

    opener = asyncio.get_running_loop().create_task(open_gate())
    harness = Harness(adapter, gate, state)

    async def settle() -> None:
        while len(done) < adapter.dispatched:
            await asyncio.sleep(0.01)

    harness.settle = settle  # type: ignore[method-assign]
    try:
        yield harness
    finally:
        opener.cancel()
        opened.set()
        remove_prewarm("gpu", on_signal)
        await adapter.aclose()


HARNESSES = {
    "webhook": webhook_harness,
    "subprocess": subprocess_harness,
    "callbacks": callback_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    async for h in HARNESSES[request.param](tmp_path):
        yield h


async def test_is_a_prewarm_adapter(harness: Harness) -> None:
    assert isinstance(harness.adapter, PrewarmAdapter)


async def test_prewarm_returns_before_the_backend_is_warm(harness: Harness) -> None:
    await asyncio.wait_for(
        harness.adapter.prewarm("gpu", reason="test", eta_s=2.0, key="gpu:prewarm:1"), 5.0
    )
    assert harness.state.get("gpu", "cold") == "cold"  # the gate is still closed
    harness.gate.set()
    await harness.settle()
    assert harness.state["gpu"] == "warm"


async def test_release_makes_it_cold_and_signals_are_idempotent(harness: Harness) -> None:
    harness.gate.set()
    for _ in range(2):
        await harness.adapter.prewarm("gpu", key="gpu:prewarm:1")
    await harness.settle()
    assert harness.state["gpu"] == "warm"
    pid = harness.adapter.pid("gpu") if isinstance(harness.adapter, SubprocessPoolAdapter) else None
    for _ in range(2):
        await harness.adapter.release("gpu", key="gpu:release:2")
    await harness.settle()
    assert harness.state["gpu"] == "cold"
    if pid is not None:
        assert not pid_alive(pid)


async def test_unknown_backend_and_cold_release_are_harmless(harness: Harness) -> None:
    harness.gate.set()
    await harness.adapter.release("gpu")
    await harness.adapter.prewarm("no-such-backend")
    await harness.adapter.release("no-such-backend")
    await harness.settle()
    assert harness.state.get("gpu", "cold") == "cold"


async def test_deliver_routes_planner_signals(harness: Harness) -> None:
    harness.gate.set()
    signals = (
        PrewarmSignal("prewarm", "gpu", "P=0.5", "gpu:prewarm:1", 1.0, 0.5),
        PrewarmSignal("release", "gpu", "idle", "gpu:release:2"),
    )
    await deliver(signals[:1], [harness.adapter])
    await harness.settle()
    assert harness.state["gpu"] == "warm"
    await deliver(signals[1:], [harness.adapter])
    await harness.settle()
    assert harness.state["gpu"] == "cold"
