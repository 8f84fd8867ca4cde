"""Every validation rule of the wire models, one case each, on a real server; the rules are the
ones the hand-written validation had (benchmarks/wire_legacy.py, checked side by side below);
and hostile bodies (5000-deep, oversized, non-UTF-8) are 4xx JSON on every POST route."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hermes_sdk.errors import InvalidRequest
from hermes_sdk.graph.export import validate_graph_json
from hermes_sdk.server import BackendConfig
from hermes_sdk.server.openapi import openapi_document
from hermes_sdk.server.scheduler import RunHints
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.server.wire import parse_batch
from hermes_sdk.wire.messages import Error, EventsApplied, Lease, RunEnded, RunStarted

from .conftest import StartServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import wire_legacy

RUN = {"type": "run_start", "run_id": "r", "app": "qa"}
UNIT = {"type": "unit_start", "run_id": "r", "unit_id": "u", "node": "n"}
END = {"type": "unit_end", "run_id": "r", "unit_id": "u", "service_s": 1.0}
PATH = {"app": "qa", "stages": [{"node": "n", "calls": [{"service_s": 1.0}]}]}


def _ev(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"events": [{**base, **changes}]}


RESERVED = _ev(
    {"type": "run_end", "run_id": "r"},
    path={**PATH, "stages": [{"node": "START", "calls": [{"service_s": 1}]}]},
)
# (rule, route, body, field named in the message)
RULES: list[tuple[str, str, Any, str]] = [
    ("body is an object", "/v1/events", [], "body"),
    ("events is a list", "/v1/events", {"events": {}}, "events"),
    ("events are required", "/v1/events", {}, "body"),
    ("at most 10,000 events", "/v1/events", {"events": [RUN] * 10_001}, "events"),
    ("dropped is an integer", "/v1/events", {"events": [], "dropped": 1.5}, "dropped"),
    ("dropped is not a boolean", "/v1/events", {"events": [], "dropped": True}, "dropped"),
    ("dropped >= 0", "/v1/events", {"events": [], "dropped": -1}, "dropped"),
    ("an event is an object", "/v1/events", {"events": ["x"]}, "events[0]"),
    ("type is known", "/v1/events", _ev(RUN, type="run_paws"), "events[0].type"),
    ("type is required", "/v1/events", {"events": [{"run_id": "r"}]}, "events[0]"),
    ("run_id is required", "/v1/events", {"events": [{"type": "run_pause"}]}, "events[0]"),
    ("a name is a string", "/v1/events", _ev(RUN, app=7), "events[0].app"),
    ("a name is not empty", "/v1/events", _ev(UNIT, node=""), "events[0].node"),
    ("a name has <= 256 chars", "/v1/events", _ev(UNIT, unit_id="u" * 257), "events[0].unit_id"),
    ("no C0 control chars", "/v1/events", _ev(UNIT, backend="g\npu"), "events[0].backend"),
    ("no DEL", "/v1/events", _ev(UNIT, parent_id="p\x7f"), "events[0].parent_id"),
    ("no C1 control chars", "/v1/events", _ev(RUN, run_id="r\x85"), "events[0].run_id"),
    ("required name not null", "/v1/events", _ev(RUN, app=None), "events[0].app"),
    ("kind is a unit kind", "/v1/events", _ev(UNIT, kind="gpu"), "events[0].kind"),
    ("kind is not null", "/v1/events", _ev(UNIT, kind=None), "events[0].kind"),
    ("kind is hashable", "/v1/events", _ev(UNIT, kind=["llm"]), "events[0].kind"),
    ("seconds are numbers", "/v1/events", _ev(END, service_s="1"), "events[0].service_s"),
    ("seconds not booleans", "/v1/events", _ev(END, service_s=True), "events[0].service_s"),
    ("seconds >= 0", "/v1/events", _ev(RUN, deadline_s=-0.5), "events[0].deadline_s"),
    ("seconds <= a week", "/v1/events", _ev(END, service_s=604_801), "events[0].service_s"),
    ("seconds finite", "/v1/events", _ev(END, service_s=1e400), "events[0].service_s"),
    ("service_s required", "/v1/events", _ev(END, service_s=None), "events[0].service_s"),
    ("tokens are integers", "/v1/events", _ev(UNIT, input_tokens=2.0), "events[0].input_tokens"),
    ("tokens not booleans", "/v1/events", _ev(END, output_tokens=True), "events[0].output_tokens"),
    ("tokens >= 0", "/v1/events", _ev(END, input_tokens=-1), "events[0].input_tokens"),
    ("tokens <= 10M", "/v1/events", _ev(END, output_tokens=10**7 + 1), "events[0].output_tokens"),
    ("failed is a boolean", "/v1/events", _ev(END, failed=1), "events[0].failed"),
    ("failed not null", "/v1/events", _ev(END, failed=None), "events[0].failed"),
    ("ts is a number", "/v1/events", _ev(RUN, ts="now"), "events[0].ts"),
    ("ts not a boolean", "/v1/events", _ev(RUN, ts=False), "events[0].ts"),
    ("ts finite", "/v1/events", _ev(RUN, ts=-1e400), "events[0].ts"),
    ("path is an object", "/v1/events", _ev({"type": "run_end", "run_id": "r"}, path=[]), "path"),
    (
        "path stages hold calls",
        "/v1/events",
        _ev({"type": "run_end", "run_id": "r"}, path={**PATH, "stages": [{"node": "n"}]}),
        "events[0].path.stages[0]",
    ),
    ("path node not reserved", "/v1/events", RESERVED, "events[0].path.stages[0]"),
    ("run app required", "/v1/runs", {"run_id": "r"}, "body"),
    ("run deadline <= a week", "/v1/runs", {"app": "qa", "deadline_s": 1e6}, "deadline_s"),
    ("run id a name", "/v1/runs", {"app": "qa", "run_id": "\t"}, "run_id"),
    ("end failed a boolean", "/v1/runs/r/end", {"failed": "yes"}, "failed"),
    ("end path an object", "/v1/runs/r/end", {"path": "x"}, "path"),
    ("acquire timeout >= 0", "/v1/backends/gpu/acquire", {"timeout_s": -1}, "timeout_s"),
    ("acquire app a name", "/v1/backends/gpu/acquire", {"app": ""}, "app"),
    ("acquire body an object", "/v1/backends/gpu/acquire", [1], "body"),
]


async def test_every_rule_is_a_400_naming_the_field(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends={"gpu": BackendConfig(4)})
    async with http.post(f"{server.url}/v1/runs", json={"app": "qa", "run_id": "r"}) as resp:
        assert resp.status == 201
    for rule, route, body, field in RULES:
        async with http.post(server.url + route, data=json.dumps(body).encode()) as resp:
            data = await resp.json()
        assert resp.status == 400, (rule, data)
        assert data["error"]["code"] in ("invalid_request", "invalid_json"), (rule, data)
        message = data["error"]["message"]
        if data["error"]["code"] == "invalid_request":
            assert message.startswith(field) or f"{field}:" in message, (rule, message)
    async with http.get(f"{server.url}/v1/runs/r") as resp:  # nothing above changed the run
        assert resp.status == 200 and (await resp.json())["visits"] == {}


async def test_valid_variants_are_accepted(serve: StartServer, http: aiohttp.ClientSession) -> None:
    server = await serve()
    events = [
        {**RUN, "deadline_s": 5, "ts": -3, "extra": {"ignored": [1, 2]}},  # ints as seconds
        {**UNIT, "node": "caf\u00e9 \u4e2d \U0001f600", "backend": None, "input_tokens": None},
        {**END, "service_s": 0, "input_tokens": 0, "output_tokens": 10**7, "failed": True},
        {"type": "run_pause", "run_id": "r", "ts": None},
        {"type": "run_end", "run_id": "r", "failed": False, "path": {**PATH, "tenant": "x"}},
    ]
    for ensure_ascii in (True, False):  # "\u00e9" escapes (checked for control chars) or raw
        body = json.dumps({"events": events, "dropped": 0}, ensure_ascii=ensure_ascii)
        async with http.post(f"{server.url}/v1/events", data=body.encode()) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["accepted"] == 5


# Hostile JSON values for the side-by-side check with the pre-issue-26 validation.
VALUES = st.sampled_from(
    [None, True, False, 0, 1, -1, 2.5, -0.0, 604_800, 604_800.5, 10**7, 10**7 + 1, 2**70,
     1e308, "", "r", "x" * 256, "x" * 257, "\x00", "a\x7f", "\x85", "\u00e9", "\ud800",
     "\U0001f600" * 256, "llm", "tool", "gpu", "run_start", "unit_start", "unit_end",
     "run_pause", "run_end", [], {}, ["llm"], float("nan"), float("inf")]
)  # fmt: skip
FIELDS = st.sampled_from(
    ["type", "run_id", "app", "deadline_s", "ts", "unit_id", "node", "kind", "backend",
     "input_tokens", "output_tokens", "parent_id", "service_s", "failed"]
)  # fmt: skip
EVENTS = st.sampled_from([RUN, UNIT, END, {"type": "run_pause", "run_id": "r"}]).flatmap(
    lambda base: st.dictionaries(FIELDS, VALUES, max_size=3).map(lambda d: {**base, **d})
)


def _legacy(body: object) -> list[Any] | None:
    try:
        return wire_legacy.parse_batch(body, "t")[0]
    except Exception:  # an unhashable kind once raised TypeError (a 500); now a 400
        return None


def _new(body: object) -> list[Any] | None:
    try:
        return parse_batch(body, "t")[0]
    except InvalidRequest:
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENTS, max_size=3), dropped=st.sampled_from([0, 3, -1, True, 2**70]))
def test_the_models_accept_exactly_what_the_hand_written_checks_accepted(
    events: list[dict[str, Any]], dropped: object
) -> None:
    body = {"events": events, "dropped": dropped}
    assert _new(body) == _legacy(body), body


async def test_hostile_bodies_are_4xx_json_on_every_route(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(
        backends={"gpu": BackendConfig(4)},
        upstreams=(UpstreamConfig("sim", "http://127.0.0.1:9", models=("sim-model",)),),
        prewarm_backends=("sandbox",),
        max_body_bytes=64 * 1024,
    )
    doc = openapi_document()
    routes = [
        path.replace("{run_id}", "r").replace("{name}", "gpu").replace("{lease_id}", "l")
        for path, item in doc["paths"].items()
        if "post" in item
    ]
    assert "/v1/events" in routes and "/v1/chat/completions" in routes and len(routes) >= 12
    bodies = {
        "5000-deep": b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}",
        "5000-deep, unclosed": b'{"a":' + b"[" * 5000,
        "oversized": b'{"events": [' + b'"x",' * 20_000 + b'"x"]}',
        "non-UTF-8": b'{"app": "\xff\xfe"}',
    }
    for route in routes:
        for what, body in bodies.items():
            headers = {"Content-Type": "application/json"}
            async with http.post(server.url + route, data=body, headers=headers) as resp:
                assert 400 <= resp.status < 500, (route, what, resp.status)
                assert resp.content_type == "application/json", (route, what)
                error = (await resp.json())["error"]
                assert error["code"] and isinstance(error["message"], str), (route, what)


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"{}"], ids=["no body", "blank body", "empty object"]
)
async def test_optional_bodies_may_be_absent(
    serve: StartServer, http: aiohttp.ClientSession, body: bytes
) -> None:
    server = await serve(backends={"gpu": BackendConfig(4)})
    async with http.post(f"{server.url}/v1/backends/gpu/acquire", data=body) as resp:
        assert resp.status == 200, await resp.text()
        lease = await resp.json()
    assert lease["backend"] == "gpu" and lease["lease_s"] > 0
    async with http.post(f"{server.url}/v1/runs", json={"app": "qa", "run_id": "r"}) as resp:
        assert resp.status == 201
    async with http.post(f"{server.url}/v1/runs/r/end", data=body) as resp:
        assert resp.status == 200 and (await resp.json()) == {
            "run_id": "r",
            "ended": True,
            "stored": False,
        }


async def test_answers_decode_as_their_documented_models(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends={"gpu": BackendConfig(4)})
    calls: list[tuple[str, str, Any, Any]] = [
        ("POST", "/v1/runs", {"app": "qa", "run_id": "r", "deadline_s": 30}, RunStarted),
        ("POST", "/v1/events", {"events": [UNIT, END]}, EventsApplied),
        ("POST", "/v1/backends/gpu/acquire", {"run_id": "r"}, Lease),
        ("GET", "/v1/runs/r/hints", None, RunHints),
        ("POST", "/v1/runs/r/end", {"path": PATH}, RunEnded),
        ("GET", "/v1/runs/r", None, Error),
    ]
    for method, route, body, model in calls:
        async with http.request(method, server.url + route, json=body) as resp:
            answer = msgspec.json.decode(await resp.read(), type=model)  # strict: fails if not
        if model is Lease:
            async with http.post(f"{server.url}/v1/leases/{answer.lease_id}/renew") as resp:
                assert msgspec.json.decode(await resp.read(), type=Lease).backend == "gpu"
    async with http.get(f"{server.url}/v1/apps/qa/graph") as resp:
        validate_graph_json(await resp.json())  # the document's PDGraph schema
