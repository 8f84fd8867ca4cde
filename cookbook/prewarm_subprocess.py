"""Recipe: prewarm a local backend process while the LLM is still thinking.

An agent ``think``s (an LLM call, ~1.5 s) then ``run_tests`` in a sandbox: a local process with
a real start-up time (here a Python server that takes 1 s to listen). Once the app's graph says
``run_tests`` follows ``think``, the prewarm planner starts the sandbox as soon as a run enters
``think`` (P(need within the cold start) is above c_idle / (c_idle + c_delay)), the subprocess
adapter launches it, and the stage finds it ready. The same stage without prewarm waits for the
start-up. After its keep-alive the idle sandbox is stopped (SIGTERM, then SIGKILL).
The planner runs embedded here (``hermes_sdk.prewarm``); ``hermes serve`` runs the same planner
for webhooks. Run: ``python cookbook/prewarm_subprocess.py`` (about six seconds).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import hermes_sdk as hermes
from hermes_sdk.prewarm import (
    KeepAliveConfig,
    PrewarmConfig,
    PrewarmPlanner,
    PrewarmRuntime,
    ProcessSpec,
    SubprocessPoolAdapter,
)

APP, THINK_S, STARTUP_S = "coder", 1.5, 1.0


def sandbox_spec() -> ProcessSpec:
    """A process that needs STARTUP_S seconds before it accepts connections on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = (
        f"import socket, time; time.sleep({STARTUP_S}); s = socket.socket(); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
    )
    return ProcessSpec(argv=(sys.executable, "-c", script), ready_tcp=("127.0.0.1", port))


async def learn() -> None:
    """Ten runs of the agent (concurrently), so the graph knows think -> run_tests."""

    @hermes.llm(name="think")
    async def think() -> None:
        await asyncio.sleep(THINK_S)

    @hermes.unit(name="run_tests", kind="container", backend="sandbox")
    async def run_tests() -> None:
        await asyncio.sleep(0.1)

    async def one() -> None:
        async with hermes.run(APP):
            await think()
            await run_tests()

    await asyncio.gather(*(one() for _ in range(10)))


async def stage_wait_s(adapter: SubprocessPoolAdapter, runtime: PrewarmRuntime | None) -> float:
    """One live run: think, then acquire the sandbox; returns the seconds the stage waited."""
    if runtime is not None:  # report the run's state to the planner (the scheduler does this)
        runtime.run_state("live", APP, hermes.RunState("think", (("think", 1),), running=True))
    await asyncio.sleep(THINK_S)
    if runtime is not None:
        runtime.request("sandbox")
    wait_s = await adapter.acquire("sandbox")
    if runtime is not None:
        runtime.done("sandbox")
        runtime.run_end("live")
    return wait_s


async def main() -> None:
    hermes.configure(store="memory://")
    await learn()
    keep_alive = KeepAliveConfig(fixed_s=0.5, min_samples=10**9)  # a fixed 0.5 s keep-alive
    config = PrewarmConfig(
        c_idle=1.0, c_delay=10.0, default_cold_start_s=2 * STARTUP_S, keep_alive=keep_alive
    )  # costs per second: idle sandbox vs app delay
    planner = PrewarmPlanner(
        lambda app, tenant: hermes.graph(app, tenant=tenant), ["sandbox"], config
    )
    runtime = PrewarmRuntime(planner, max_sleep_s=0.2)
    adapter = SubprocessPoolAdapter({"sandbox": sandbox_spec()}, on_ready=runtime.ready)
    runtime.adapters.append(adapter)
    runtime.start()
    try:
        warm_wait_s = await stage_wait_s(adapter, runtime)
        for signal in runtime.signals:
            print(f"prewarm signal: {signal.action} {signal.backend} ({signal.reason})")
        print(f"with prewarm: the stage waited {warm_wait_s:.2f} s")
        for _ in range(100):  # idle past the keep-alive (0.5 s): the planner releases it
            if adapter.pid("sandbox") is None:
                break
            await asyncio.sleep(0.05)
        print("after keep-alive:", [f"{s.action} {s.backend}" for s in runtime.signals])
        print("sandbox process running:", adapter.pid("sandbox") is not None)
    finally:
        await runtime.aclose()  # stops every process the adapter started
    cold = SubprocessPoolAdapter({"sandbox": sandbox_spec()})
    try:
        print(f"without prewarm: the stage waited {await stage_wait_s(cold, None):.2f} s")
    finally:
        await cold.aclose()


if __name__ == "__main__":
    asyncio.run(main())
