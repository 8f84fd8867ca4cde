"""Subprocess adapter on loopback: a real 1 s start-up, started ahead of the stage that needs it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph import PDGraph
from hermes_sdk.graph.records import RunPath, RunState
from hermes_sdk.prewarm.keepalive import KeepAliveConfig
from hermes_sdk.prewarm.planner import PrewarmConfig, PrewarmPlanner
from hermes_sdk.prewarm.runtime import PrewarmRuntime
from hermes_sdk.prewarm.subprocess_pool import ProcessSpec, SubprocessPoolAdapter

from .builders import stage

THINK_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slow_server_spec(port: int, startup_s: float = 1.0) -> ProcessSpec:
    """A process that sleeps ``startup_s`` then listens on ``port`` until killed."""
    script = (
        "import socket, time\n"
        f"time.sleep({startup_s})\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port}))\n"
        "s.listen()\n"
        "while True:\n"
        "    c, _ = s.accept()\n"
        "    c.close()\n"
    )
    return ProcessSpec(argv=(sys.executable, "-c", script), ready_tcp=("127.0.0.1", port))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_process_started_ahead_and_stopped_after_keep_alive() -> None:
    graph = PDGraph("agent")
    for i in range(20):
        path = (stage("think", THINK_S, "llm"), stage("run_tool", 0.2, "svc", "container"))
        graph.observe(RunPath("agent", path, run_id=f"r{i}"))
    cfg = PrewarmConfig(
        c_idle=1.0,
        c_delay=50.0,
        default_cold_start_s=2.0,
        keep_alive=KeepAliveConfig(fixed_s=0.5, min_samples=10**9),
    )
    planner = PrewarmPlanner(lambda app, tenant: graph, ["svc"], cfg)
    runtime = PrewarmRuntime(planner, max_sleep_s=0.2)
    adapter = SubprocessPoolAdapter({"svc": slow_server_spec(free_port())}, on_ready=runtime.ready)
    runtime.adapters.append(adapter)
    runtime.start()
    try:
        runtime.run_state("r1", "agent", RunState("think", (("think", 1),), running=True))
        await asyncio.sleep(THINK_S)  # the LLM stage; the planner warms 'svc' meanwhile
        pid = adapter.pid("svc")
        assert pid is not None, "the process was not started ahead of the stage"
        runtime.run_state(
            "r1", "agent", RunState("run_tool", (("run_tool", 1), ("think", 1)), True)
        )
        found = runtime.request("svc")
        wait_s = await adapter.acquire("svc")
        assert found == "warm"
        assert wait_s == 0.0  # the stage saw no start-up wait
        await asyncio.sleep(0.2)
        runtime.done("svc")
        runtime.run_end("r1")
        for _ in range(200):  # keep-alive 0.5 s, then SIGTERM
            if adapter.pid("svc") is None and not pid_alive(pid):
                break
            await asyncio.sleep(0.05)
        assert adapter.pid("svc") is None
        assert not pid_alive(pid)
        m = runtime.metrics()["svc"]
        assert (m.prewarms, m.prewarm_hits, m.misses, m.releases) == (1, 1, 0, 1)
        assert planner.ledger.get("svc").cold_start.count == 1  # the start-up was learned
    finally:
        await runtime.aclose()


async def test_acquire_cold_waits_for_start_up_and_release_kills() -> None:
    adapter = SubprocessPoolAdapter({"svc": slow_server_spec(free_port(), 0.3)})
    try:
        wait_s = await adapter.acquire("svc")
        assert wait_s > 0.0
        assert adapter.is_ready("svc")
        assert await adapter.acquire("svc") == 0.0
        pid = adapter.pid("svc")
        assert pid is not None
        await adapter.release("svc")
        assert not pid_alive(pid)
        with pytest.raises(ConfigError):
            await adapter.acquire("unknown")
    finally:
        await adapter.aclose()


async def test_sigkill_when_sigterm_is_ignored() -> None:
    port = free_port()
    script = (
        "import signal, socket, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port}))\n"
        "s.listen()\n"
        "time.sleep(600)\n"
    )
    spec = ProcessSpec(
        argv=(sys.executable, "-c", script), ready_tcp=("127.0.0.1", port), stop_timeout_s=0.3
    )
    adapter = SubprocessPoolAdapter({"stubborn": spec})
    await adapter.acquire("stubborn")
    pid = adapter.pid("stubborn")
    assert pid is not None
    await adapter.release("stubborn")
    assert not pid_alive(pid)


async def test_failed_start_raises() -> None:
    spec = ProcessSpec(
        argv=(sys.executable, "-c", "raise SystemExit(3)"), ready_tcp=("127.0.0.1", free_port())
    )
    adapter = SubprocessPoolAdapter({"bad": spec})
    with pytest.raises(RuntimeError):
        await adapter.acquire("bad")
    await adapter.aclose()
