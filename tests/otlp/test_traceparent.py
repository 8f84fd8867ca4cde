"""Live hints for traced apps: a gateway request carrying a W3C ``traceparent`` is ranked as the
run its trace's spans (``POST /v1/traces``) describe."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from hermes_sdk.server import ServerConfig
from hermes_sdk.server.gateway import GATEWAY
from hermes_sdk.server.gateway_requests import trace_run_id
from hermes_sdk.server.scheduler import SCHEDULER
from tests.otlp.traces import Traces, chat, protobuf
from tests.reliability.harness import with_engine

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
PB = {"Content-Type": "application/x-protobuf"}


def test_trace_run_id_reads_w3c_traceparent() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_run_id(f"00-{tid}-00f067aa0ba902b7-01") == tid
    assert trace_run_id(f" 00-{tid}-00f067aa0ba902b7-00 ") == tid
    for bad in (
        None,
        "",
        f"ff-{tid}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{tid}-{'0' * 16}-01",  # all-zero parent id
        f"00-{tid.upper()}-00f067aa0ba902b7-01",  # upper case
        f"00-{tid}-00f067aa0ba902b7",  # no flags
    ):
        assert trace_run_id(bad) is None, bad


async def test_gateway_ranks_a_traced_request_by_its_trace(tmp_path: Path) -> None:
    cfg = ServerConfig(port=0, store_url=f"sqlite:///{tmp_path}/h.db")
    async with with_engine(cfg) as (app, url, _), aiohttp.ClientSession() as http:
        sched, gw = app[SCHEDULER], app[GATEWAY]
        t = Traces("qa")
        for i in range(20):  # learn qa: plan -> search -> answer, answer the longest step
            root = t.span("request", 0, None)
            t.span("plan", 0, 1, root, chat())
            t.span("search", 1, 2, root, chat())
            t.span("answer", 2, 8 + i % 3, root, chat())
            t.end(root, 11)
        async with http.post(f"{url}/v1/traces", data=protobuf(t.take()), headers=PB) as r:
            assert r.status == 200
        root = t.span("request", 0, None)  # a run in flight: plan and search done
        t.span("plan", 0, 1, root, chat())
        t.span("search", 1, 2, root, chat())
        async with http.post(f"{url}/v1/traces", data=protobuf(t.take()), headers=PB) as r:
            assert r.status == 200
        ctx = root.get_span_context()
        trace_id = format(ctx.trace_id, "032x")
        run = sched.run("default", trace_id)
        assert run is not None and run.node == "search" and run.visits == {"plan": 1, "search": 1}

        async def call(**headers: str) -> float | None:
            body = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
            return gw.calls[-1].rank_s

        traced = await call(traceparent=f"00-{trace_id}-{format(ctx.span_id, '016x')}-01")
        assert traced is not None and traced == pytest.approx(sched.rank_of("default", trace_id))
        fresh = await call(**{"X-Hermes-App": "qa", "X-Hermes-Run": "new-run"})
        assert fresh is not None and traced < fresh  # past two steps: less left to do
        assert gw.calls[-2].run_id == trace_id and gw.calls[-2].app is None
        run = sched.run("default", trace_id)  # the gateway added no unit: spans are the units
        assert run is not None and run.visits == {"plan": 1, "search": 1}
        unknown = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
        assert await call(traceparent=unknown) is None  # a trace the receiver never saw
        t.end(root, 3)  # the root arrives: the run ends and is learned
        async with http.post(f"{url}/v1/traces", data=protobuf(t.take()), headers=PB) as r:
            assert r.status == 200
        assert sched.run("default", trace_id) is None
        assert sched.registry.get("qa") is not None and sched.registry.get("qa").runs == 21
