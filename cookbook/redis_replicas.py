"""Recipe: two scheduler replicas sharing one Redis: any replica serves any request.

Starts ``redis-server`` on a free port (data in a temporary directory) and two
``hermes serve --store redis://127.0.0.1:PORT/0`` replicas, as a load balancer would see them.
Each run is started through one replica and ended, with its path, through the other (the run
is tracked in Redis, so the second replica knows it), and both replicas then serve the same
learned graph. Runs are sent with the scheduler client's control API; the path is the wire
format of docs/protocol.md, so any language can do the same with plain HTTP.

Run: ``python cookbook/redis_replicas.py`` (needs ``redis-server`` on PATH; a few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from hermes_sdk.client import SchedulerClient

APP = "ticket-triage"
HERMES = [sys.executable, "-m", "hermes_sdk"]  # the `hermes` command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def spawn(argv: list[str], port: int) -> Iterator[None]:
    """Run ``argv`` until the block ends; wait until it accepts TCP connections on ``port``."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):  # at most ~30 s
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with status {proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        else:
            raise TimeoutError(f"{argv} did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def path(run: int) -> dict[str, object]:
    """A completed run's path: classify, then (every third run) a lookup, then reply."""
    stages = [{"node": "classify", "kind": "llm", "calls": [{"service_s": 0.4}]}]
    if run % 3 == 0:
        stages.append({"node": "lookup", "kind": "tool", "calls": [{"service_s": 0.1}] * 2})
    stages.append({"node": "reply", "kind": "llm", "calls": [{"service_s": 0.8}]})
    return {"app": APP, "stages": stages}


async def main() -> None:
    redis_port, port_a, port_b = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        redis = ["redis-server", "--port", str(redis_port), "--dir", tmp, "--save", ""]
        stack.enter_context(spawn(redis, redis_port))
        store = f"redis://127.0.0.1:{redis_port}/0"
        for port in (port_a, port_b):
            serve = [*HERMES, "serve", "--port", str(port), "--store", store]
            stack.enter_context(spawn([*serve, "--backend", "gpu=4"], port))
        async with (
            SchedulerClient(f"http://127.0.0.1:{port_a}") as a,
            SchedulerClient(f"http://127.0.0.1:{port_b}") as b,
        ):
            for i in range(9):
                first, second = (a, b) if i % 2 == 0 else (b, a)
                run_id = await first.start_run(APP, deadline_s=10.0)
                hints = await second.hints(run_id)  # the other replica knows the run
                await second.end_run(run_id, path=path(i))
            print(f"run {run_id} started on one replica, hints from the other: {hints}")
            graph_a = await a.graph(APP, format="mermaid")
            graph_b = await b.graph(APP, format="mermaid")
        print("graph on replica A:", graph_a, sep="\n")
        print("graph on replica B:", graph_b, sep="\n")
        print("both replicas agree" if graph_a == graph_b else "the replicas DIFFER")


if __name__ == "__main__":
    asyncio.run(main())
