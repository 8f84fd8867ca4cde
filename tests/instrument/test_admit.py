"""``admit=True``: a decorated unit holds a scheduler slot of its backend, fail-open."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest
from aiohttp.test_utils import TestServer

import hermes_sdk as hermes
from hermes_sdk.client.admission import configure_admission
from hermes_sdk.errors import GraphError
from hermes_sdk.server.app import create_app
from hermes_sdk.server.config import BackendConfig, ServerConfig

WORK_S = 0.2


def _overlaps(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


async def _run_three(spans: list[tuple[float, float]]) -> None:
    @hermes.tool(backend="gpu", admit=True)
    async def render(i: int) -> int:
        start = time.perf_counter()
        await asyncio.sleep(WORK_S)
        spans.append((start, time.perf_counter()))
        return i

    async def app(i: int) -> int:
        async with hermes.run(app="renderer"):
            return await render(i)

    assert await asyncio.gather(*(app(i) for i in range(3))) == [0, 1, 2]


async def test_admitted_units_take_turns_and_waits_are_not_service() -> None:
    config = ServerConfig(store_url="memory://", backends={"gpu": BackendConfig(max_inflight=1)})
    server = TestServer(create_app(config))
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        hermes.configure(scheduler_url=url)
        configure_admission(url, connect_timeout_s=5.0)  # not 50 ms: no fail-open on loaded CI
        spans: list[tuple[float, float]] = []
        await _run_three(spans)
        assert len(spans) == 3 and not _overlaps(spans)  # one slot: never two at once
        hermes.flush()
        service = hermes.graph("renderer").node_stats("render").service_s
        assert service.quantile(1.0) < 2 * WORK_S  # the last one waited ~2x WORK_S, not learned
    finally:
        hermes.configure(store="memory://")
        await server.close()


async def test_scheduler_down_admits_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hermes.configure(scheduler_url=f"http://127.0.0.1:{port}")
    try:
        spans: list[tuple[float, float]] = []
        await _run_three(spans)
        assert len(spans) == 3 and _overlaps(spans)  # fail-open: nobody waited for a slot
    finally:
        hermes.configure(store="memory://")


def test_admit_needs_a_backend_and_a_plain_function() -> None:
    with pytest.raises(GraphError, match="needs a backend"):

        @hermes.tool(admit=True)
        def no_backend() -> None: ...

    with pytest.raises(TypeError, match="not generators"):

        @hermes.tool(backend="gpu", admit=True)
        def gen() -> object:
            yield 1
