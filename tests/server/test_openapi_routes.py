"""The OpenAPI document covers every route the scheduler app registers, and docs/ is current.

The app is built with every optional part on (a gateway upstream, prewarm), so every route group
``create_app`` can register is walked: control API, leases, metrics, OpenAPI, dashboard,
prewarm and the OpenAI-compatible gateway.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hermes_sdk.server import BackendConfig, ServerConfig, create_app
from hermes_sdk.server.auth import PUBLIC_PATHS
from hermes_sdk.server.openapi import openapi_document, openapi_json
from hermes_sdk.server.scheduler import SCHEDULER
from hermes_sdk.server.ui import STATIC_FILES
from hermes_sdk.server.upstreams import UpstreamConfig

from .conftest import StartServer

DOCS_OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
FULL: dict[str, Any] = {
    "backends": {"gpu": BackendConfig(max_inflight=1)},
    # ``models`` given: the gateway learns nothing from the (unreachable) upstream at start-up
    "upstreams": (UpstreamConfig("sim", "http://127.0.0.1:9", models=("sim-model",)),),
    "prewarm_backends": ("sandbox",),
}


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route, without the automatic HEADs and static files."""
    ops = set()
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None or isinstance(resource, web.StaticResource):
            continue
        if resource.canonical in STATIC_FILES:  # the dashboard page and its assets (files)
            continue
        ops.add((route.method, resource.canonical))
    return ops


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_full_app_registers_the_optional_route_groups(tmp_path: Path) -> None:
    app = create_app(ServerConfig(store_url=f"sqlite:///{tmp_path}/h.db", **FULL))
    try:
        ops = registered(app)
    finally:
        app[SCHEDULER].close()
    for needle in (
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/v1/prewarm"),
        ("GET", "/v1/ui/state"),
        ("POST", "/v1/runs"),
    ):
        assert needle in ops  # the walk below sees every group
    static = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert set(STATIC_FILES) <= static


async def test_every_registered_route_is_in_the_served_openapi(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(**FULL)
    async with http.get(f"{server.url}/openapi.json") as resp:
        assert resp.status == 200
        served = await resp.json()
    assert served == openapi_document()
    routes = registered(server.app)
    missing = sorted(routes - documented(served))
    assert not missing, f"routes the app serves but /openapi.json does not describe: {missing}"
    phantom = sorted(documented(served) - routes)
    assert not phantom, f"operations /openapi.json describes but the app does not serve: {phantom}"


def test_every_operation_is_fully_described() -> None:
    doc = openapi_document()
    schemes = doc["components"]["securitySchemes"]
    for method, path, op in operations(doc):
        where = f"{method} {path}"
        assert op.get("summary"), where
        assert op.get("operationId"), where
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert params == set(re.findall(r"{(\w+)}", path)), where
        security = op.get("security", doc["security"])
        assert (security == []) == (path in PUBLIC_PATHS), f"{where}: auth does not match auth.py"
        for requirement in security:
            assert set(requirement) <= set(schemes), where
        responses = op["responses"]
        assert any(code.startswith("2") for code in responses), where
        errors = {code: r for code, r in responses.items() if code.startswith("4")}
        if security:
            assert "401" in errors, where
        for code, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{where} {code}"
        if method == "POST" and path.startswith(("/v1/runs", "/v1/events", "/v1/prewarm")):
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert body.get("type") == "object", where
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


def test_gateway_operations_document_request_bodies() -> None:
    doc = openapi_document()
    for path, needed in (
        ("/v1/chat/completions", {"model", "messages"}),
        ("/v1/completions", {"model", "prompt"}),
        ("/v1/embeddings", {"model", "input"}),
    ):
        op = doc["paths"][path]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["required"]) == needed, path
        headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
        assert {"X-Hermes-App", "X-Hermes-Run", "X-Hermes-Deadline"} <= headers, path
        assert {"404", "429"} <= set(op["responses"]), path


def test_docs_openapi_json_is_the_generated_document() -> None:
    on_disk = DOCS_OPENAPI.read_text()
    assert json.loads(on_disk) == openapi_document(), (
        "docs/openapi.json is stale: regenerate it with `.venv/bin/python -c "
        "\"from hermes_sdk.server.openapi import openapi_json as j; print(j(), end='')\" "
        "> docs/openapi.json`"
    )
    assert on_disk == openapi_json(), "docs/openapi.json is not formatted as generated"
