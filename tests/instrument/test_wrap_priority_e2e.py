"""End to end: two apps on one `hermes sim-engine --priority` process through `hermes.wrap`.

After learning, the larger app's requests carry a larger rank and a later vLLM priority than the
smaller app's, and when both wait behind a busy engine the smaller is served first, although it
arrived second. The same contention with an unwrapped client is served first come first served.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

import hermes_sdk as hermes

HERMES = str(Path(sys.executable).with_name("hermes"))
MSGS = [{"role": "user", "content": "summarise the report"}]
BIG_CALLS, BIG_TOKENS, SMALL_TOKENS = 4, 32, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def engine() -> Iterator[str]:
    port = _free_port()
    args = [HERMES, "sim-engine", "--priority", "--port", str(port), "--max-batch", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"sim-engine did not start: {err}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def big_app(client: OpenAI) -> None:
    with hermes.run(app="report"):
        for _ in range(BIG_CALLS):
            client.chat.completions.create(model="sim-model", messages=MSGS, max_tokens=BIG_TOKENS)


def small_app(client: OpenAI) -> None:
    with hermes.run(app="lookup"):
        client.chat.completions.create(model="sim-model", messages=MSGS, max_tokens=SMALL_TOKENS)


def _contend(root: str, client: OpenAI) -> dict[str, dict[str, Any]]:
    """Big, then small, both queued behind a long request; the first request of each app."""
    httpx.delete(root + "/debug/requests")
    blocker = OpenAI(base_url=root + "/v1", api_key="-", max_retries=0)  # priority 0: not preempted
    hold = threading.Thread(
        target=blocker.chat.completions.create,
        kwargs={"model": "sim-model", "messages": MSGS, "max_tokens": 600},
    )
    apps = [threading.Thread(target=big_app, args=(client,))]
    apps.append(threading.Thread(target=small_app, args=(client,)))
    for seen, thread in enumerate([hold, *apps], start=1):
        thread.start()  # each arrives after the previous one reached the engine
        while len(httpx.get(root + "/debug/requests").json()["requests"]) < seen:
            time.sleep(0.005)
    for thread in [hold, *apps]:
        thread.join(60)
    records = httpx.get(root + "/debug/requests").json()["requests"]
    assert records[0]["finish_s"] > max(r["arrival_s"] for r in records[1:3])  # contention
    first: dict[str, dict[str, Any]] = {}
    for record in sorted(records[1:], key=lambda r: r["arrival_s"]):
        tokens = record["completion_tokens"]
        first.setdefault("big" if tokens == BIG_TOKENS else "small", record)
    return first


@pytest.mark.slow
def test_smaller_app_ranks_first_and_is_served_first(engine: str) -> None:
    client = hermes.wrap(OpenAI(base_url=engine + "/v1", api_key="-", max_retries=0))
    for _ in range(8):  # learning, no contention
        big_app(client)
        small_app(client)
    assert hermes.flush(10)
    assert sorted(hermes.graph("report").nodes) == sorted(hermes.graph("lookup").nodes)
    assert hermes.graph("report").runs == hermes.graph("lookup").runs == 8

    hinted = _contend(engine, client)
    big, small = hinted["big"], hinted["small"]
    assert float(big["headers"]["x-hermes-rank"]) > float(small["headers"]["x-hermes-rank"])
    assert big["priority"] > small["priority"]  # vLLM: lower values run first
    assert big["arrival_s"] < small["arrival_s"]
    assert small["start_s"] < big["start_s"]  # served first under contention

    plain = OpenAI(base_url=engine + "/v1", api_key="-", max_retries=0)
    fcfs = _contend(engine, plain)
    assert fcfs["big"]["priority"] == fcfs["small"]["priority"] == 0
    assert fcfs["big"]["start_s"] < fcfs["small"]["start_s"]  # without hints: FCFS
