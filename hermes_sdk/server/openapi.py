"""The OpenAPI 3.1 document of the control API (served at ``/openapi.json``, kept in docs/)."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

import hermes_sdk

JSON: Final = "application/json"

_ERROR = {"$ref": "#/components/schemas/Error"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 256}
_SECONDS = {"type": "number", "minimum": 0}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    return out


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ERROR}}}


_COMMON_ERRORS: Final = {
    "400": _err("Malformed JSON, wrong types, negative durations"),
    "401": _err("Missing or unknown API key"),
    "413": _err("Body larger than the server's limit"),
}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **_COMMON_ERRORS}, **extra}


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or _NAME}


_EVENT = {
    "type": "object",
    "required": ["type", "run_id"],
    "properties": {
        "type": {"enum": ["run_start", "unit_start", "unit_end", "run_end"]},
        "run_id": _NAME,
        "app": _NAME,
        "deadline_s": _SECONDS,
        "unit_id": _NAME,
        "parent_id": _NAME,
        "node": _NAME,
        "kind": {"enum": ["llm", "tool", "retriever", "dnn", "container", "custom"]},
        "backend": _NAME,
        "input_tokens": {"type": "integer", "minimum": 0},
        "output_tokens": {"type": "integer", "minimum": 0},
        "service_s": _SECONDS,
        "failed": {"type": "boolean"},
        "path": {"type": "object", "description": "path_to_dict(RunPath)"},
        "ts": {"type": "number", "description": "unix seconds"},
    },
}

_LEASE = {
    "type": "object",
    "required": ["lease_id", "backend", "waited_s", "lease_s"],
    "properties": {
        "lease_id": {"type": "string"},
        "backend": _NAME,
        "rank_s": {"type": ["number", "null"]},
        "waited_s": _SECONDS,
        "lease_s": _SECONDS,
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as a dict (deterministic: no timestamps, sorted by construction)."""
    run_id = _param("run_id")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hermes scheduler control API",
            "version": hermes_sdk.__version__.split(".dev")[0],
            "description": "Runs, events, admission and graphs. See docs/protocol.md.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "retry_after_s": {"type": "number"},
                            },
                        }
                    },
                },
                "Event": _EVENT,
                "Lease": _LEASE,
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": _ok("Alive", {"type": "object"})},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _ok("OpenAPI document", {"type": "object"})},
                }
            },
            "/v1/runs": {
                "post": _op(
                    "Start a run",
                    {"201": _ok("Run started", {"type": "object"}), "409": _err("Other app")},
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["app"],
                            "properties": {"app": _NAME, "run_id": _NAME, "deadline_s": _SECONDS},
                        }
                    ),
                )
            },
            "/v1/runs/{run_id}": {
                "get": _op(
                    "Tracked state of a run",
                    {"200": _ok("Run", {"type": "object"}), "404": _err("No such run")},
                    parameters=[run_id],
                )
            },
            "/v1/runs/{run_id}/end": {
                "post": _op(
                    "End a run; its path is stored durably before the answer",
                    {"200": _ok("Ended", {"type": "object"}), "404": _err("No such run")},
                    parameters=[run_id],
                    requestBody=_body(
                        {
                            "type": "object",
                            "properties": {
                                "failed": {"type": "boolean"},
                                "path": {"type": "object"},
                            },
                        },
                        required=False,
                    ),
                )
            },
            "/v1/runs/{run_id}/hints": {
                "get": _op(
                    "Server-side rank and remaining-demand prediction of a run",
                    {"200": _ok("Hints", {"type": "object"}), "404": _err("No such run")},
                    parameters=[run_id],
                )
            },
            "/v1/events": {
                "post": _op(
                    "Apply a batch of events",
                    {
                        "200": _ok(
                            "Applied (paths durable)",
                            {
                                "type": "object",
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "rejected": {"type": "integer"},
                                },
                            },
                        )
                    },
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["events"],
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Event"},
                                },
                                "dropped": {"type": "integer", "minimum": 0},
                            },
                        }
                    ),
                )
            },
            "/v1/backends": {
                "get": _op("Backends with slots in use and queue depth", {"200": _ok("List")})
            },
            "/v1/backends/{name}/acquire": {
                "post": _op(
                    "Long-poll for a slot on a backend",
                    {
                        "200": _ok("Granted", {"$ref": "#/components/schemas/Lease"}),
                        "404": _err("Unknown backend"),
                        "429": _err("Not granted within the timeout; retry after retry_after_s"),
                    },
                    parameters=[_param("name")],
                    requestBody=_body(
                        {
                            "type": "object",
                            "properties": {
                                "run_id": _NAME,
                                "app": _NAME,
                                "deadline_s": _SECONDS,
                                "timeout_s": _SECONDS,
                            },
                        },
                        required=False,
                    ),
                )
            },
            "/v1/leases/{lease_id}/release": {
                "post": _op(
                    "Release a slot",
                    {"200": _ok("Released"), "404": _err("Unknown or reclaimed lease")},
                    parameters=[_param("lease_id", schema={"type": "string"})],
                )
            },
            "/v1/leases/{lease_id}/renew": {
                "post": _op(
                    "Extend a held slot by the backend's lease_s",
                    {
                        "200": _ok("Renewed", {"$ref": "#/components/schemas/Lease"}),
                        "404": _err("Unknown or reclaimed lease"),
                    },
                    parameters=[_param("lease_id", schema={"type": "string"})],
                )
            },
            "/v1/apps": {"get": _op("The tenant's apps with a graph", {"200": _ok("List")})},
            "/v1/apps/{app}/graph": {
                "get": _op(
                    "An app's PDGraph",
                    {"200": _ok("Graph (JSON, DOT or Mermaid)"), "404": _err("No such app")},
                    parameters=[
                        _param("app"),
                        _param("format", "query", {"enum": ["json", "dot", "mermaid"]}),
                    ],
                )
            },
        },
    }


routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi_endpoint(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(openapi_document())
