"""Tenant isolation: tenant B can neither read nor change anything of tenant A's."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hermes_sdk.server import BackendConfig, ServerConfig

from .conftest import Server, StartServer

KEYS = {"key-a": "acme", "key-b": "bravo"}
PATH = {"app": "qa", "stages": [{"node": "plan", "kind": "llm", "calls": [{"service_s": 1.0}]}]}


async def _call(
    http: aiohttp.ClientSession,
    server: Server,
    key: str | None,
    method: str,
    path: str,
    body: Any = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.request(method, server.url + path, json=body, headers=headers) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


@pytest.fixture
async def server(serve: StartServer) -> Server:
    base = ServerConfig(backends={"gpu": BackendConfig(max_inflight=2)}).with_api_keys(KEYS)
    return await serve(backends=base.backends, api_keys=base.api_keys)


async def _seed_a(http: aiohttp.ClientSession, server: Server) -> str:
    status, _ = await _call(
        http, server, "key-a", "POST", "/v1/runs", {"app": "qa", "run_id": "a-run"}
    )
    assert status == 201
    status, _ = await _call(
        http,
        server,
        "key-a",
        "POST",
        "/v1/events",
        {
            "events": [
                {"type": "run_end", "run_id": "a-done", "path": PATH},
                {"type": "unit_start", "run_id": "a-run", "unit_id": "u1", "node": "plan"},
            ]
        },
    )
    assert status == 200
    status, lease = await _call(http, server, "key-a", "POST", "/v1/backends/gpu/acquire", {})
    assert status == 200
    return str(lease["lease_id"])


async def test_keys_are_required(server: Server, http: aiohttp.ClientSession) -> None:
    for key in (None, "wrong", "key-a "):
        status, data = await _call(http, server, key, "GET", "/v1/apps")
        if key == "key-a ":  # surrounding whitespace is stripped: still key-a
            assert status == 200
            continue
        assert status == 401 and data["error"]["code"] == "unauthorized"
    status, _ = await _call(http, server, None, "GET", "/healthz")
    assert status == 200


async def test_tenant_b_cannot_touch_tenant_a(server: Server, http: aiohttp.ClientSession) -> None:
    lease_a = await _seed_a(http, server)
    # Every read and write of A's objects, as B: 404 (B's namespace simply has none of them).
    matrix = [
        ("GET", "/v1/runs/a-run", None),
        ("GET", "/v1/runs/a-run/hints", None),
        ("POST", "/v1/runs/a-run/end", {"path": PATH}),
        ("GET", "/v1/apps/qa/graph", None),
        ("GET", "/v1/apps/qa/graph?format=dot", None),
        ("POST", f"/v1/leases/{lease_a}/release", {}),
        ("POST", f"/v1/leases/{lease_a}/renew", {}),
    ]
    for method, path, body in matrix:
        status, data = await _call(http, server, "key-b", method, path, body)
        assert status in (403, 404), (method, path, status, data)
    status, apps = await _call(http, server, "key-b", "GET", "/v1/apps")
    assert apps == {"apps": []}
    # B's events naming A's run id land in B's namespace: A's run and graph are unchanged.
    status, data = await _call(
        http,
        server,
        "key-b",
        "POST",
        "/v1/events",
        {
            "events": [
                {"type": "unit_end", "run_id": "a-run", "unit_id": "u1", "service_s": 99.0},
                {"type": "run_end", "run_id": "a-run", "path": PATH},
            ]
        },
    )
    assert (status, data) == (200, {"accepted": 1, "rejected": 1})
    # A still sees everything of its own, untouched.
    status, run = await _call(http, server, "key-a", "GET", "/v1/runs/a-run")
    assert status == 200 and run["running"] is True and run["attained_s"] == 0.0
    status, graph = await _call(http, server, "key-a", "GET", "/v1/apps/qa/graph")
    assert status == 200 and graph["runs"] == 1
    status, _ = await _call(http, server, "key-a", "POST", f"/v1/leases/{lease_a}/release", {})
    assert status == 200
    # And B's graph of the same app name is B's own.
    status, graph_b = await _call(http, server, "key-b", "GET", "/v1/apps/qa/graph")
    assert status == 200 and graph_b["runs"] == 1


async def test_body_tenant_is_ignored(server: Server, http: aiohttp.ClientSession) -> None:
    status, _ = await _call(
        http,
        server,
        "key-b",
        "POST",
        "/v1/events",
        {
            "events": [
                {
                    "type": "run_end",
                    "run_id": "x",
                    "tenant": "acme",
                    "path": {**PATH, "tenant": "acme"},
                },
            ]
        },
    )
    assert status == 200
    status, apps_a = await _call(http, server, "key-a", "GET", "/v1/apps")
    assert apps_a == {"apps": []}
    status, apps_b = await _call(http, server, "key-b", "GET", "/v1/apps")
    assert [a["app"] for a in apps_b["apps"]] == ["qa"]


async def test_keyring_stores_only_digests() -> None:
    cfg = ServerConfig().with_api_keys(KEYS)
    stored = repr(cfg.api_keys)
    assert "key-a" not in stored and "key-b" not in stored
    assert {k.tenant for k in cfg.api_keys} == {"acme", "bravo"}
