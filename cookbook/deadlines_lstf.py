"""Recipe: deadlines with LSTF (least slack time first) on a shared backend with one slot.

Starts ``hermes serve --policy lstf --backend gpu=1`` (a subprocess on a free port, SQLite store
in a temporary directory). A first run holds the only ``gpu`` slot; meanwhile three runs of a
``batch-report`` app (deadline 120 s) ask for it, then three runs of a ``chat-reply`` app
(deadline 3 s); both apps' graphs were learned from a few earlier runs. When the slot frees up,
LSTF admits the runs with the least slack (deadline - now - P95 of the predicted remaining
work, seconds) first: the chat replies go before the reports that arrived earlier (under
``--policy fcfs`` the order is the arrival order). Uses the scheduler client's slot API
(``async with client.slot(backend, run_id=, app=, deadline_s=)``) around each backend call.

Run: ``python cookbook/deadlines_lstf.py [--policy lstf]`` (a few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator

from hermes_sdk.client import SchedulerClient


@contextlib.contextmanager
def scheduler(policy: str) -> Iterator[str]:
    """``hermes serve --policy POLICY --backend gpu=1`` on a free port; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "hermes_sdk", "serve", "--port", str(port)]
        argv += ["--policy", policy, "--backend", "gpu=1", "--store", f"sqlite:///{tmp}/h.db"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):  # wait until it answers (at most ~30 s)
                if proc.poll() is not None:
                    raise RuntimeError(f"hermes serve exited with status {proc.returncode}")
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(url + "/healthz", timeout=1).close()
                    break
                time.sleep(0.05)
            else:
                raise TimeoutError("hermes serve did not start")
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


async def main(policy: str) -> None:
    admitted: list[str] = []

    async def use_gpu(client: SchedulerClient, app: str, run_id: str, deadline_s: float) -> None:
        async with client.slot("gpu", run_id=run_id, app=app, deadline_s=deadline_s) as grant:
            rank = f"{grant.rank_s:.2f} s" if grant and grant.rank_s is not None else None
            admitted.append(f"{app}/{run_id} (rank {rank})")  # LSTF: the slack
            await asyncio.sleep(0.05)  # the backend call

    with scheduler(policy) as url:
        async with SchedulerClient(url, connect_timeout_s=1.0) as client:
            for _ in range(5):  # history: a chat reply is one 0.5 s call, a report four 2 s calls
                for app, calls, call_s in (("chat-reply", 1, 0.5), ("batch-report", 4, 2.0)):
                    stages = [{"node": "generate", "kind": "llm", "calls": [{"service_s": call_s}]}]
                    run_id = await client.start_run(app)
                    await client.end_run(run_id, path={"app": app, "stages": stages * calls})
            blocker = await client.acquire("gpu", run_id="first", app="warmup")
            waiting = []
            arrivals = [("batch-report", 120.0)] * 3 + [("chat-reply", 3.0)] * 3
            for i, (app, deadline_s) in enumerate(arrivals):
                waiting.append(asyncio.create_task(use_gpu(client, app, f"r{i}", deadline_s)))
                await asyncio.sleep(0.05)  # arrival order: reports first, then chats
            while (await client.backends())[0]["waiting"] < len(arrivals):
                await asyncio.sleep(0.05)
            print(
                f"policy {policy}: arrival order:",
                [f"{a}/r{i}" for i, (a, _) in enumerate(arrivals)],
            )
            await client.release(blocker)
            await asyncio.gather(*waiting)
    print("admission order:")
    for line in admitted:
        print("  ", line)
    print("first admitted:", admitted[0].split("/")[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="lstf", help="lstf (default), fcfs, edf, gittins...")
    asyncio.run(main(parser.parse_args().policy))
