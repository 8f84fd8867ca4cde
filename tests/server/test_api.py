"""Control API on a real server: happy paths, and every bad input answered 4xx JSON, never 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hermes_sdk.server import BackendConfig
from hermes_sdk.server.openapi import openapi_document

from .conftest import StartServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
GPU = {"gpu": BackendConfig(max_inflight=1, lease_s=60)}

PATH = {"app": "qa", "stages": [{"node": "plan", "kind": "llm", "calls": [{"service_s": 1.0}]}]}

BAD_REQUESTS: list[tuple[str, str, Any]] = [
    # (method, path, body: str = raw bytes, else JSON)
    ("POST", "/v1/events", "{not json"),
    ("POST", "/v1/events", "\xff\xfe"),
    ("POST", "/v1/events", "[]"),
    ("POST", "/v1/events", "null"),
    ("POST", "/v1/events", ""),
    ("POST", "/v1/events", {"events": "nope"}),
    ("POST", "/v1/events", {"events": [1]}),
    ("POST", "/v1/events", {"events": [{"type": "explode", "run_id": "r"}]}),
    ("POST", "/v1/events", {"events": [{"type": "run_start", "run_id": 5, "app": "a"}]}),
    ("POST", "/v1/events", {"events": [{"type": "run_start", "run_id": "", "app": "a"}]}),
    ("POST", "/v1/events", {"events": [{"type": "run_start", "run_id": "r\x00", "app": "a"}]}),
    ("POST", "/v1/events", {"events": [{"type": "run_start", "run_id": "r", "app": ["a"]}]}),
    (
        "POST",
        "/v1/events",
        {"events": [{"type": "run_start", "run_id": "r", "app": "a", "deadline_s": -1}]},
    ),
    (
        "POST",
        "/v1/events",
        {"events": [{"type": "unit_end", "run_id": "r", "unit_id": "u", "service_s": -0.5}]},
    ),
    (
        "POST",
        "/v1/events",
        {"events": [{"type": "unit_end", "run_id": "r", "unit_id": "u", "service_s": "1"}]},
    ),
    (
        "POST",
        "/v1/events",
        {
            "events": [
                {
                    "type": "unit_end",
                    "run_id": "r",
                    "unit_id": "u",
                    "service_s": 1,
                    "output_tokens": -3,
                }
            ]
        },
    ),
    (
        "POST",
        "/v1/events",
        {
            "events": [
                {"type": "unit_end", "run_id": "r", "unit_id": "u", "service_s": 1, "failed": "yes"}
            ]
        },
    ),
    (
        "POST",
        "/v1/events",
        {
            "events": [
                {"type": "unit_start", "run_id": "r", "unit_id": "u", "node": "n", "kind": "gpu"}
            ]
        },
    ),
    (
        "POST",
        "/v1/events",
        {
            "events": [
                {
                    "type": "run_end",
                    "run_id": "r",
                    "path": {"app": "a", "stages": [{"node": "n", "calls": [{"service_s": -1}]}]},
                }
            ]
        },
    ),
    ("POST", "/v1/events", {"events": [{"type": "run_end", "run_id": "r", "path": "x"}]}),
    ("POST", "/v1/events", {"events": [], "dropped": -1}),
    (
        "POST",
        "/v1/events",
        {"events": [{"type": "run_start", "run_id": "r", "app": "a", "ts": "now"}]},
    ),
    ("POST", "/v1/runs", {}),
    ("POST", "/v1/runs", {"app": 3}),
    ("POST", "/v1/runs", {"app": "a", "deadline_s": -5}),
    ("POST", "/v1/runs", {"app": "a", "deadline_s": float("inf")}),
    ("POST", "/v1/runs", "[1,2]"),
    ("POST", "/v1/backends/gpu/acquire", {"timeout_s": -1}),
    ("POST", "/v1/backends/gpu/acquire", {"run_id": 7}),
    ("POST", "/v1/backends/gpu/acquire", {"deadline_s": "soon"}),
    ("POST", "/v1/backends/gpu/acquire", "{"),
    ("POST", "/v1/backends/nope/acquire", {}),
    ("POST", "/v1/leases/nope/release", {}),
    ("GET", "/v1/runs/nope", None),
    ("GET", "/v1/runs/nope/hints", None),
    ("POST", "/v1/runs/nope/end", {}),
    ("GET", "/v1/apps/nope/graph", None),
    ("GET", "/v1/apps/qa/graph?format=png", None),
    ("GET", "/v1/nothing-here", None),
    ("DELETE", "/v1/runs", None),
]


async def _request(
    http: aiohttp.ClientSession, method: str, url: str, body: Any
) -> tuple[int, Any]:
    if isinstance(body, str):
        kwargs: dict[str, Any] = {"data": body.encode("latin-1")}
    elif body is None:
        kwargs = {}
    else:
        kwargs = {"data": json.dumps(body).encode()}  # allows inf/NaN, like a sloppy client
    async with http.request(method, url, **kwargs) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


async def test_bad_input_is_a_4xx_json_error_never_500(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends=GPU)
    await _request(http, "POST", f"{server.url}/v1/runs/qa-1/end", None)  # warm: unknown run
    await _request(http, "POST", f"{server.url}/v1/runs", {"app": "qa", "run_id": "qa-1"})
    await _request(
        http,
        "POST",
        f"{server.url}/v1/events",
        {"events": [{"type": "run_end", "run_id": "qa-0", "path": PATH}]},
    )
    for method, path, body in BAD_REQUESTS:
        status, data = await _request(http, method, server.url + path, body)
        assert 400 <= status < 500, (method, path, body, status, data)
        assert isinstance(data["error"]["code"], str) and data["error"]["code"], data
        assert isinstance(data["error"]["message"], str), data


async def test_a_malformed_batch_changes_nothing(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve()
    good = {"type": "run_end", "run_id": "r1", "path": PATH}
    bad = {"type": "unit_end", "run_id": "r1", "unit_id": "u", "service_s": -1}
    status, _ = await _request(http, "POST", f"{server.url}/v1/events", {"events": [good, bad]})
    assert status == 400
    status, data = await _request(http, "GET", f"{server.url}/v1/apps", None)
    assert data == {"apps": []}


async def test_huge_body_is_413_json(serve: StartServer, http: aiohttp.ClientSession) -> None:
    server = await serve(max_body_bytes=4096)
    events = [{"type": "run_start", "run_id": f"r{i}", "app": "a"} for i in range(500)]
    status, data = await _request(http, "POST", f"{server.url}/v1/events", {"events": events})
    assert status == 413
    assert data["error"]["code"] == "body_too_large"


async def test_known_codes(serve: StartServer, http: aiohttp.ClientSession) -> None:
    server = await serve(backends=GPU)
    cases = [
        ("POST", "/v1/events", "{", 400, "invalid_json"),
        ("POST", "/v1/runs", {"app": "a", "deadline_s": -1}, 400, "invalid_request"),
        ("POST", "/v1/backends/nope/acquire", {}, 404, "unknown_backend"),
        ("GET", "/v1/runs/x/hints", None, 404, "unknown_run"),
        ("GET", "/v1/apps/x/graph", None, 404, "unknown_app"),
        ("POST", "/v1/leases/x/release", None, 404, "unknown_lease"),
        ("POST", "/v1/leases/x/renew", None, 404, "unknown_lease"),
        ("DELETE", "/v1/runs", None, 405, "method_not_allowed"),
    ]
    for method, path, body, want_status, want_code in cases:
        status, data = await _request(http, method, server.url + path, body)
        assert (status, data["error"]["code"]) == (want_status, want_code), (path, data)


async def test_run_lifecycle_and_graph_export(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends=GPU)
    status, run = await _request(
        http, "POST", f"{server.url}/v1/runs", {"app": "qa", "deadline_s": 30}
    )
    assert status == 201 and run["app"] == "qa"
    rid = run["run_id"]
    events = [
        {"type": "unit_start", "run_id": rid, "unit_id": "1", "node": "plan", "kind": "llm"},
        {"type": "unit_end", "run_id": rid, "unit_id": "1", "service_s": 1.0, "output_tokens": 9},
        {"type": "unit_end", "run_id": rid, "unit_id": "never-started", "service_s": 1.0},
        {"type": "unit_start", "run_id": "ghost", "unit_id": "1", "node": "plan"},
    ]
    status, data = await _request(http, "POST", f"{server.url}/v1/events", {"events": events})
    assert (status, data) == (200, {"accepted": 2, "rejected": 2})
    status, state = await _request(http, "GET", f"{server.url}/v1/runs/{rid}", None)
    assert state["node"] == "plan" and state["visits"] == {"plan": 1}
    assert state["attained_s"] == 1.0 and state["deadline_s"] == 30
    status, data = await _request(
        http, "POST", f"{server.url}/v1/runs/{rid}/end", {"path": {**PATH, "app": "other"}}
    )
    assert status == 400
    status, data = await _request(http, "POST", f"{server.url}/v1/runs/{rid}/end", {"path": PATH})
    assert (status, data["stored"]) == (200, True)
    status, _ = await _request(http, "GET", f"{server.url}/v1/runs/{rid}", None)
    assert status == 404
    _, apps = await _request(http, "GET", f"{server.url}/v1/apps", None)
    assert apps == {"apps": [{"app": "qa", "runs": 1}]}
    _, graph = await _request(http, "GET", f"{server.url}/v1/apps/qa/graph", None)
    assert graph["app"] == "qa"
    for fmt, needle in (("dot", "digraph"), ("mermaid", "flowchart")):
        async with http.get(f"{server.url}/v1/apps/qa/graph?format={fmt}") as resp:
            assert resp.status == 200 and needle in await resp.text()


async def test_acquire_times_out_with_retry_hint_and_leases_are_reclaimed(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends={"gpu": BackendConfig(max_inflight=1, lease_s=0.3)})
    url = f"{server.url}/v1/backends/gpu/acquire"
    status, lease = await _request(http, "POST", url, {})
    assert status == 200
    status, data = await _request(http, "POST", url, {"timeout_s": 0.05})
    assert status == 429 and data["error"]["code"] == "queue_timeout"
    assert data["error"]["retry_after_s"] > 0
    # The holder never releases: after lease_s the slot is reclaimed and a waiter gets it.
    status, again = await _request(http, "POST", url, {"timeout_s": 5})
    assert status == 200 and again["lease_id"] != lease["lease_id"]
    status, _ = await _request(
        http, "POST", f"{server.url}/v1/leases/{lease['lease_id']}/release", {}
    )
    assert status == 404
    async with http.get(f"{server.url}/metrics") as resp:
        text = await resp.text()
    assert 'hermes_leases_reclaimed_total{backend="gpu"} 1.0' in text
    assert 'hermes_acquire_timeouts_total{backend="gpu"} 1.0' in text


async def test_client_disconnect_removes_the_waiter(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends=GPU)
    url = f"{server.url}/v1/backends/gpu/acquire"
    _, holder = await _request(http, "POST", url, {})
    async with aiohttp.ClientSession() as other:
        task = asyncio.ensure_future(other.post(url, json={"run_id": "gone"}))
        for _ in range(200):
            _, b = await _request(http, "GET", f"{server.url}/v1/backends", None)
            if b["backends"][0]["waiting"] == 1:
                break
            await asyncio.sleep(0.01)
        task.cancel()
    for _ in range(200):
        _, b = await _request(http, "GET", f"{server.url}/v1/backends", None)
        if b["backends"][0]["waiting"] == 0:
            break
        await asyncio.sleep(0.02)
    assert b["backends"][0]["waiting"] == 0
    await _request(http, "POST", f"{server.url}/v1/leases/{holder['lease_id']}/release", {})
    _, b = await _request(http, "GET", f"{server.url}/v1/backends", None)
    assert b["backends"][0]["inflight"] == 0, "a departed waiter must not be granted a slot"


async def test_healthz_metrics_and_openapi(serve: StartServer, http: aiohttp.ClientSession) -> None:
    server = await serve(backends=GPU)
    status, health = await _request(http, "GET", f"{server.url}/healthz", None)
    assert status == 200 and health["status"] == "ok"
    await _request(
        http,
        "POST",
        f"{server.url}/v1/events",
        {
            "events": [
                {"type": "run_start", "run_id": "r", "app": "a"},
                {"type": "unit_end", "run_id": "zz", "unit_id": "u", "service_s": 1},
            ],
            "dropped": 3,
        },
    )
    async with http.get(f"{server.url}/metrics") as resp:
        text = await resp.text()
    for needle in (
        "hermes_events_accepted_total 1.0",
        "hermes_events_rejected_total 1.0",
        "hermes_events_dropped_total 3.0",
        "hermes_runs_active 1.0",
        "hermes_rank_latency_seconds_bucket",
        "hermes_queue_wait_seconds",
    ):
        assert needle in text
    status, doc = await _request(http, "GET", f"{server.url}/openapi.json", None)
    assert doc == openapi_document()
    assert doc["openapi"].startswith("3.")
    assert json.loads((DOCS / "openapi.json").read_text()) == doc, (
        "docs/openapi.json is stale: regenerate it with "
        "`python -c 'import json; from hermes_sdk.server.openapi import openapi_document as d; "
        "print(json.dumps(d(), indent=2))' > docs/openapi.json`"
    )


@pytest.mark.parametrize("path", ["/v1/events", "/v1/runs"])
async def test_wrong_content_is_not_500(
    serve: StartServer, http: aiohttp.ClientSession, path: str
) -> None:
    server = await serve()
    async with http.post(server.url + path, data=b"\x00" * 100) as resp:
        assert resp.status == 400
