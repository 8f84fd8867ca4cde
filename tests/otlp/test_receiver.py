"""``POST /v1/traces`` on a real scheduler: encodings, errors, tenancy, live run state."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest

from hermes_sdk.otlp import SpanMapping
from hermes_sdk.otlp.mapping import mapping_from_env
from hermes_sdk.server.config import ApiKey, hash_api_key
from hermes_sdk.server.otlp_routes import OTLP
from hermes_sdk.server.scheduler import SCHEDULER
from tests.otlp.traces import Traces, chat, otlp_json, protobuf
from tests.server.conftest import StartServer

PB = {"Content-Type": "application/x-protobuf"}


def three_step_run(t: Traces, answer_tokens: int = 7) -> str:
    root = t.span("request", 0, None)
    t.span("plan", 0, 1, root, chat("m", 10, 3))
    t.span("search", 1, 2, root, {"gen_ai.operation.name": "retrieval"})
    t.span("answer", 2, 3, root, chat("m", 40, answer_tokens))
    t.end(root, 3)
    return format(root.get_span_context().trace_id, "032x")


async def graph(http: aiohttp.ClientSession, url: str, app: str, **headers: str) -> dict:
    async with http.get(f"{url}/v1/apps/{app}/graph", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_protobuf_and_json_runs_are_learned(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve()
    t = Traces("doc-qa")
    three_step_run(t)
    async with http.post(f"{server.url}/v1/traces", data=protobuf(t.take()), headers=PB) as r:
        assert r.status == 200 and r.content_type == "application/x-protobuf"
        assert await r.read() == b""  # an empty ExportTraceServiceResponse: all accepted
    three_step_run(t)
    async with http.post(f"{server.url}/v1/traces", json=otlp_json(t.take())) as r:
        assert r.status == 200 and await r.json() == {}
    doc = await graph(http, server.url, "doc-qa")
    assert doc["runs"] == 2
    assert {n["id"] for n in doc["nodes"]} >= {"plan", "search", "answer"}
    kinds = {n["id"]: n["kind"] for n in doc["nodes"]}
    assert kinds["plan"] == "llm" and kinds["search"] == "retriever"
    async with http.get(f"{server.url}/metrics") as r:
        text = await r.text()
    assert 'hermes_otlp_spans_total{outcome="accepted"} 8.0' in text
    assert 'hermes_otlp_runs_total{outcome="learned"} 2.0' in text


async def test_bad_bodies_are_4xx_json(serve: StartServer, http: aiohttp.ClientSession) -> None:
    server = await serve(max_body_bytes=64 * 1024)
    url = f"{server.url}/v1/traces"
    cases = [
        (b"\x0a\xff\xff\xff\xff\x0f", PB, 400, "invalid_otlp"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"{}", {"Content-Type": "application/grpc"}, 415, "unsupported_media_type"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b'{"a":' + b"[" * 5000, {"Content-Type": "application/json"}, 400, "invalid_json"),
        (b'{"resourceSpans": "x"}', {"Content-Type": "application/json"}, 400, "invalid_otlp"),
        (b"\x0a" + b"\x00" * (100 * 1024), PB, 413, "body_too_large"),
    ]
    for body, headers, status, code in cases:
        async with http.post(url, data=body, headers=headers) as r:
            assert r.status == status, (body[:20], await r.text())
            assert (await r.json())["error"]["code"] == code


async def test_malformed_spans_are_partial_success(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve()
    t = Traces()
    three_step_run(t)
    doc = otlp_json(t.take())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append(dict(spans[0], traceId="00" * 16))
    spans.append(dict(spans[0], spanId="cd" * 8, startTimeUnixNano="0"))
    async with http.post(f"{server.url}/v1/traces", json=doc) as r:
        assert r.status == 200
        body = await r.json()
    assert body["partialSuccess"]["rejectedSpans"] == "2"
    assert (await graph(http, server.url, "qa"))["runs"] == 1


async def test_tenant_comes_from_the_api_key(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    keys = [
        ApiKey(hash_api_key("key-a", "s"), "team-a"),
        ApiKey(hash_api_key("key-b", "s"), "team-b"),
    ]
    server = await serve(api_keys=tuple(keys), key_salt="s")
    t = Traces("shared-name")
    three_step_run(t)
    body = protobuf(t.take())
    async with http.post(f"{server.url}/v1/traces", data=body, headers=PB) as r:
        assert r.status == 401
    auth_a = {"Authorization": "Bearer key-a"}
    async with http.post(f"{server.url}/v1/traces", data=body, headers={**PB, **auth_a}) as r:
        assert r.status == 200
    assert (await graph(http, server.url, "shared-name", **auth_a))["runs"] == 1
    async with http.get(
        f"{server.url}/v1/apps/shared-name/graph", headers={"Authorization": "Bearer key-b"}
    ) as r:
        assert r.status == 404


async def test_live_run_state_and_idle_timeout(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve()
    receiver = server.app[OTLP]
    receiver.configure(SpanMapping(idle_timeout_s=0.3))
    sched = server.app[SCHEDULER]
    t = Traces("live")
    root = t.span("request", 0, None)
    t.span("plan", 0, 1, root, chat())
    trace_id = format(root.get_span_context().trace_id, "032x")
    async with http.post(f"{server.url}/v1/traces", data=protobuf(t.take()), headers=PB) as r:
        assert r.status == 200
    run = sched.run("default", trace_id)
    assert run is not None and run.app == "live" and run.node == "plan"
    assert run.visits == {"plan": 1}
    for _ in range(100):  # the root never comes: closed by the idle timeout, never stuck
        await asyncio.sleep(0.05)
        if sched.run("default", trace_id) is None:
            break
    assert sched.run("default", trace_id) is None
    doc = await graph(http, server.url, "live")
    assert doc["runs"] == 1 and doc.get("failed_runs", 1) == 1
    assert receiver.assembler.stats.runs_timed_out == 1


def test_mapping_from_env() -> None:
    m = mapping_from_env(
        {
            "HERMES_OTLP_KINDS": "vector search=retriever, plan=step",
            "HERMES_OTLP_ROOT_SPAN": "job",
            "HERMES_OTLP_IDLE_TIMEOUT_S": "5",
        }
    )
    assert m.kind_by_span_name == {"vector search": "retriever", "plan": "step"}
    assert m.root_span_name == "job" and m.idle_timeout_s == 5
    with pytest.raises(ValueError):
        mapping_from_env({"HERMES_OTLP_KINDS": "x=banana"})
    with pytest.raises(ValueError):
        mapping_from_env({"HERMES_OTLP_IDLE_TIMEOUT_S": "soon"})
    assert json.dumps(sorted(mapping_from_env({}).kind_by_span_name)) == "[]"


async def test_without_opentelemetry_proto_the_receiver_answers_415(
    serve: StartServer, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await serve()
    t = Traces()
    three_step_run(t)
    body = protobuf(t.take())
    monkeypatch.setitem(
        sys.modules, "opentelemetry.proto.collector.trace.v1.trace_service_pb2", None
    )
    async with http.post(f"{server.url}/v1/traces", data=body, headers=PB) as r:
        assert r.status == 415
        assert (await r.json())["error"]["code"] == "otlp_unavailable"


def test_core_imports_without_opentelemetry_proto() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith(('opentelemetry.proto', 'google.protobuf')):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import hermes_sdk, hermes_sdk.otlp, hermes_sdk.server.app, hermes_sdk.cli\n"
        "assert 'opentelemetry.proto' not in sys.modules\n"
        "try:\n"
        "    hermes_sdk.otlp.decode(b'', 'application/x-protobuf', hermes_sdk.otlp.SpanMapping())\n"
        "except hermes_sdk.otlp.OtlpUnavailable as exc:\n"
        "    print('unavailable:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "unavailable: OTLP ingestion needs opentelemetry-proto" in out.stdout
