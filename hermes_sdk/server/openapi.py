"""The OpenAPI 3.1 document of the scheduler server (served at ``/openapi.json``, kept in docs/).

It describes every route :func:`hermes_sdk.server.create_app` can register: the control API,
leases, the dashboard's data endpoints (``/v1/ui/...``), prewarm (``/v1/prewarm...``, only with
``--prewarm``) and the OpenAI-compatible gateway (only with upstreams). The dashboard page and its
two assets (``/ui``, ``/ui/app.js``, ``/ui/app.css``) are static files and are not listed.
tests/server/test_openapi_routes.py checks the document against the app's router and against
docs/openapi.json; regenerate that file with ``python -c "from hermes_sdk.server.openapi import
openapi_json as j; print(j(), end='')" > docs/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

import hermes_sdk
from hermes_sdk.client.hints import QUEUE_WAIT_HEADER
from hermes_sdk.server.prewarm_routes import MAX_WAIT_S

JSON: Final = "application/json"

_ERROR = {"$ref": "#/components/schemas/Error"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 256}
_SECONDS = {"type": "number", "minimum": 0}
_OBJECT = {"type": "object"}


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
    "401": _err(
        "Missing or unknown API key (unauthorized), past its not_after (key_expired), or removed "
        "by a reload while the request waited (key_revoked)"
    ),
    "413": _err("Body larger than the server's limit"),
    "429": _err("The tenant is over its rate limit (rate_limited, Retry-After header)"),
}


def _op(
    operation_id: str, tag: str, summary: str, responses: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """An authenticated operation: its own responses plus the errors every such call can get."""
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "responses": {**_COMMON_ERRORS, **responses},
        **extra,
    }


def _public(operation_id: str, summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    """An operation served without a key (auth.PUBLIC_PATHS)."""
    return {
        "operationId": operation_id,
        "tags": ["service"],
        "summary": summary,
        "security": [],
        "responses": {"200": ok},
    }


def _param(name: str, where: str = "path", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or _NAME}


_EVENT = {
    "type": "object",
    "required": ["type", "run_id"],
    "properties": {
        "type": {"enum": ["run_start", "unit_start", "unit_end", "run_pause", "run_end"]},
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

_PREWARM_SIGNAL = {
    "type": "object",
    "required": ["action", "backend", "reason", "key", "eta_s", "probability"],
    "properties": {
        "action": {"enum": ["prewarm", "release"]},
        "backend": _NAME,
        "reason": {"type": "string"},
        "key": {"type": "string", "description": "idempotency key of the planner decision"},
        "eta_s": {"type": ["number", "null"], "description": "seconds until needed (prewarm)"},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

_PREWARM = "Only when prewarm is on (`--prewarm`, `[prewarm]`); else 404."
_GATEWAY = "Only when the server has upstreams (`--upstream`, `[[upstreams]]`); else 404."

_RUN_HEADERS: Final = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": f"{what} (or `metadata.{key}` in the body)",
        "schema": schema,
    }
    for name, key, what, schema in (
        ("X-Hermes-App", "hermes_app", "App of the run the call belongs to", _NAME),
        ("X-Hermes-Run", "hermes_run", "Run the call belongs to", _NAME),
        ("X-Hermes-Unit", "hermes_unit", "Unit (node) of the call", _NAME),
        ("X-Hermes-Deadline", "hermes_deadline", "Run deadline, seconds", {"type": "number"}),
    )
]

_GATEWAY_FIELDS: Final = {
    "model": {"type": "string", "minLength": 1, "description": "routes to an upstream"},
    "stream": {"type": "boolean"},
    "stream_options": {
        "type": "object",
        "properties": {"include_usage": {"type": "boolean"}},
    },
    "metadata": {
        "type": "object",
        "description": "the hermes_* keys name the run and are removed before forwarding",
        "properties": {
            "hermes_app": _NAME,
            "hermes_run": _NAME,
            "hermes_unit": _NAME,
            "hermes_deadline": {"type": ["number", "string"]},
        },
    },
}

_TEXT_OR_LIST = {"type": ["string", "array"]}


def _gateway_body(required: list[str], **fields: dict[str, Any]) -> dict[str, Any]:
    return _body(
        {
            "type": "object",
            "required": ["model", *required],
            "description": "Any other OpenAI field is forwarded as is; `priority` is dropped "
            "(the gateway sets the engine-native priority from the server's rank).",
            "properties": {**_GATEWAY_FIELDS, **fields},
        }
    )


def _gateway_op(operation_id: str, summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return _op(
        operation_id,
        "gateway",
        summary,
        {
            "200": {
                "description": f"The upstream's answer (JSON, or SSE when `stream`). {_GATEWAY}",
                "headers": {
                    QUEUE_WAIT_HEADER: {
                        "description": "Seconds the request waited for an upstream slot",
                        "schema": _SECONDS,
                    }
                },
                "content": {JSON: {"schema": _OBJECT}, "text/event-stream": {"schema": {}}},
            },
            "404": _err("No upstream serves `model` (model_not_found)"),
            "429": _err(
                "No upstream slot within the upstream's timeout_s (queue_timeout), or the tenant "
                "is over its rate limit (rate_limited); Retry-After header"
            ),
            "502": _err("The upstream failed (upstream_error)"),
        },
        parameters=_RUN_HEADERS,
        requestBody=body,
    )


def _control_paths() -> dict[str, Any]:
    run_id = _param("run_id")
    return {
        "/v1/runs": {
            "post": _op(
                "startRun",
                "control",
                "Start a run",
                {"201": _ok("Run started", _OBJECT), "409": _err("Other app")},
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
                "getRun",
                "control",
                "Tracked state of a run",
                {"200": _ok("Run", _OBJECT), "404": _err("No such run")},
                parameters=[run_id],
            )
        },
        "/v1/runs/{run_id}/end": {
            "post": _op(
                "endRun",
                "control",
                "End a run; its path is stored durably before the answer",
                {"200": _ok("Ended", _OBJECT), "404": _err("No such run")},
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
                "getRunHints",
                "control",
                "Server-side rank and remaining-demand prediction of a run",
                {"200": _ok("Hints", _OBJECT), "404": _err("No such run")},
                parameters=[run_id],
            )
        },
        "/v1/events": {
            "post": _op(
                "postEvents",
                "control",
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
            "get": _op(
                "listBackends",
                "leases",
                "Backends with slots in use and queue depth",
                {"200": _ok("List")},
            )
        },
        "/v1/backends/{name}/acquire": {
            "post": _op(
                "acquireSlot",
                "leases",
                "Long-poll for a slot on a backend",
                {
                    "200": _ok("Granted", {"$ref": "#/components/schemas/Lease"}),
                    "404": _err("Unknown backend"),
                    "429": _err(
                        "Not granted within the timeout (queue_timeout), or the tenant is over "
                        "its rate limit (rate_limited); retry after retry_after_s"
                    ),
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
                "releaseLease",
                "leases",
                "Release a slot",
                {"200": _ok("Released"), "404": _err("Unknown or reclaimed lease")},
                parameters=[_param("lease_id", schema={"type": "string"})],
            )
        },
        "/v1/leases/{lease_id}/renew": {
            "post": _op(
                "renewLease",
                "leases",
                "Extend a held slot by the backend's lease_s",
                {
                    "200": _ok("Renewed", {"$ref": "#/components/schemas/Lease"}),
                    "404": _err("Unknown or reclaimed lease"),
                },
                parameters=[_param("lease_id", schema={"type": "string"})],
            )
        },
        "/v1/apps": {
            "get": _op(
                "listApps", "control", "The tenant's apps with a graph", {"200": _ok("List")}
            )
        },
        "/v1/apps/{app}/graph": {
            "get": _op(
                "getAppGraph",
                "control",
                "An app's PDGraph",
                {"200": _ok("Graph (JSON, DOT or Mermaid)"), "404": _err("No such app")},
                parameters=[
                    _param("app"),
                    _param("format", "query", {"enum": ["json", "dot", "mermaid"]}),
                ],
            )
        },
    }


_DASHBOARD_STATE: Final = {
    "tenant": {"type": "string"},
    "policy": {"type": "string"},
    "now_s": {"type": "number"},
    "backends": {"type": "array", "items": _OBJECT},
    "prewarm": {"type": ["object", "null"], "description": "null when prewarm is off"},
    "runs": _OBJECT,
    "apps": {"type": "array", "items": _OBJECT},
}


def _dashboard_paths() -> dict[str, Any]:
    return {
        "/v1/ui/state": {
            "get": _op(
                "getDashboardState",
                "dashboard",
                "The dashboard's data for the key's tenant: policy, backends, prewarm, apps, "
                "running apps by predicted remaining demand",
                {
                    "200": _ok(
                        "State",
                        {
                            "type": "object",
                            "required": sorted(_DASHBOARD_STATE),
                            "properties": _DASHBOARD_STATE,
                        },
                    )
                },
            )
        },
        "/v1/ui/apps/{app}/graph.svg": {
            "get": _op(
                "getDashboardGraphSvg",
                "dashboard",
                "An app's PDGraph drawn as SVG",
                {
                    "200": {
                        "description": "SVG",
                        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                    },
                    "404": _err("No such app (unknown_app)"),
                },
                parameters=[_param("app")],
            )
        },
    }


def _prewarm_paths() -> dict[str, Any]:
    signals = {"type": "array", "items": {"$ref": "#/components/schemas/PrewarmSignal"}}
    off = _err(f"Prewarm is off. {_PREWARM}")
    return {
        "/v1/prewarm": {
            "get": _op(
                "getPrewarm",
                "prewarm",
                "Per backend: warm state, learned cold start and keep-alive, P(need), metrics",
                {
                    "200": _ok(
                        "State",
                        {
                            "type": "object",
                            "required": ["threshold", "backends", "signals"],
                            "properties": {
                                "threshold": {"type": "number"},
                                "backends": {"type": "object", "additionalProperties": _OBJECT},
                                "signals": signals,
                            },
                        },
                    ),
                    "404": off,
                },
            )
        },
        "/v1/prewarm/signals": {
            "get": _op(
                "getPrewarmSignals",
                "prewarm",
                "Long-poll for the prewarm signals after sequence number `after`",
                {
                    "200": _ok(
                        "Signals",
                        {
                            "type": "object",
                            "required": ["seq", "signals"],
                            "properties": {"seq": {"type": "integer"}, "signals": signals},
                        },
                    ),
                    "404": off,
                },
                parameters=[
                    _param("after", "query", {"type": "integer", "minimum": 0}),
                    _param(
                        "wait_s",
                        "query",
                        {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S},
                    ),
                ],
            )
        },
        "/v1/prewarm/report": {
            "post": _op(
                "reportPrewarm",
                "prewarm",
                "A backend reports it is ready (with its start-up time) or released",
                {"200": _ok("Recorded", {"type": "object"}), "404": off},
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["backend", "event"],
                        "properties": {
                            "backend": _NAME,
                            "event": {"enum": ["ready", "released"]},
                            "startup_s": _SECONDS,
                        },
                    }
                ),
            )
        },
    }


def _gateway_paths() -> dict[str, Any]:
    return {
        "/v1/chat/completions": {
            "post": _gateway_op(
                "createChatCompletion",
                "OpenAI chat completion, admitted by server-side rank",
                _gateway_body(
                    ["messages"],
                    messages={
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["role"],
                            "properties": {
                                "role": {"type": "string"},
                                "content": {"type": ["string", "array", "null"]},
                            },
                        },
                    },
                ),
            )
        },
        "/v1/completions": {
            "post": _gateway_op(
                "createCompletion",
                "OpenAI text completion, admitted by server-side rank",
                _gateway_body(["prompt"], prompt=_TEXT_OR_LIST),
            )
        },
        "/v1/embeddings": {
            "post": _gateway_op(
                "createEmbedding",
                "OpenAI embeddings, admitted by server-side rank",
                _gateway_body(["input"], input=_TEXT_OR_LIST),
            )
        },
        "/v1/models": {
            "get": _op(
                "listModels",
                "gateway",
                "The models the upstreams serve",
                {
                    "200": _ok(
                        f"OpenAI model list. {_GATEWAY}",
                        {
                            "type": "object",
                            "required": ["object", "data"],
                            "properties": {
                                "object": {"const": "list"},
                                "data": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["id"],
                                        "properties": {
                                            "id": {"type": "string"},
                                            "object": {"type": "string"},
                                            "created": {"type": "integer"},
                                            "owned_by": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    )
                },
            )
        },
    }


def _admin_paths() -> dict[str, Any]:
    report = {
        "type": "object",
        "required": ["reloaded", "keys", "added", "removed", "restart_required"],
        "properties": {
            "reloaded": {"const": True},
            "keys": {"type": "integer", "description": "keys in force after the reload"},
            "added": {"type": "integer"},
            "removed": {"type": "integer"},
            "expired": {"type": "integer", "description": "keys in force past their not_after"},
            "rate_limit_rps": {"type": ["number", "null"]},
            "rate_limit_burst": {"type": "integer"},
            "metrics_public": {"type": "boolean"},
            "waits_ended": {
                "type": "integer",
                "description": "acquires waiting with a removed key, ended with 401 key_revoked",
            },
            "restart_required": {
                "type": "array",
                "items": {"type": "string"},
                "description": "settings changed in the file that only apply at start",
            },
        },
    }
    return {
        "/v1/admin/reload": {
            "post": _op(
                "reloadKeys",
                "admin",
                "Re-read API keys and rate limits from the config file, without a restart",
                {
                    "200": _ok("In force now", report),
                    "400": _err(
                        "The file is unreadable or invalid (config_error); nothing changed"
                    ),
                    "403": _err('The key has no role = "admin" (forbidden)'),
                    "409": _err("The server was not started with --config (no_config_file)"),
                },
            )
        }
    }


def _traces_paths() -> dict[str, Any]:
    """The OTLP/HTTP traces receiver (docs/otel-traces.md)."""
    otlp_json = {
        "type": "object",
        "description": "OTLP JSON ExportTraceServiceRequest (hex trace and span ids)",
        "properties": {"resourceSpans": {"type": "array", "items": _OBJECT}},
    }
    protobuf = {"schema": {"type": "string", "format": "binary"}}
    return {
        "/v1/traces": {
            "post": _op(
                "postTraces",
                "traces",
                "Learn runs from OpenTelemetry spans (OTLP/HTTP, protobuf or JSON)",
                {
                    "200": {
                        "description": "ExportTraceServiceResponse in the request's encoding; "
                        "partialSuccess.rejectedSpans counts malformed spans",
                        "content": {
                            "application/x-protobuf": protobuf,
                            JSON: {"schema": _OBJECT},
                        },
                    },
                    "415": _err(
                        "Content-Type is neither application/x-protobuf nor application/json "
                        "(unsupported_media_type), or opentelemetry-proto is not installed "
                        "(otlp_unavailable)"
                    ),
                },
                requestBody={
                    "required": True,
                    "content": {
                        "application/x-protobuf": protobuf,
                        JSON: {"schema": otlp_json},
                    },
                },
            )
        }
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as a dict (deterministic: no timestamps, sorted by construction)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hermes scheduler API",
            "version": hermes_sdk.__version__.split(".dev")[0],
            "description": "Runs, events, admission, graphs, the dashboard's data, prewarm and "
            "the OpenAI-compatible gateway. See docs/protocol.md. Every error is a JSON "
            '`{"error": {"code", "message"}}` body.',
        },
        "tags": [
            {"name": "service", "description": "Health, metrics and this document (no key)"},
            {"name": "control", "description": "Runs, events and learned graphs"},
            {"name": "leases", "description": "Admission: slots on backends"},
            {"name": "dashboard", "description": "Data of the `/ui` dashboard page"},
            {"name": "prewarm", "description": _PREWARM},
            {"name": "gateway", "description": f"OpenAI-compatible gateway. {_GATEWAY}"},
            {"name": "admin", "description": 'Key rotation (a key with role = "admin")'},
            {"name": "traces", "description": "OTLP/HTTP traces receiver (docs/otel-traces.md)"},
        ],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
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
                                "type": {
                                    "type": "string",
                                    "description": "OpenAI error type (gateway errors)",
                                },
                            },
                        }
                    },
                },
                "Event": _EVENT,
                "Lease": _LEASE,
                "PrewarmSignal": _PREWARM_SIGNAL,
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/healthz": {"get": _public("healthz", "Liveness", _ok("Alive", _OBJECT))},
            "/metrics": {
                "get": _public(
                    "metrics", "Prometheus metrics", {"description": "text exposition format"}
                )
            },
            "/openapi.json": {
                "get": _public("openapi", "This document", _ok("OpenAPI document", _OBJECT))
            },
            **_control_paths(),
            **_dashboard_paths(),
            **_prewarm_paths(),
            **_gateway_paths(),
            **_admin_paths(),
            **_traces_paths(),
        },
    }


def openapi_json() -> str:
    """The document as the text of docs/openapi.json."""
    return json.dumps(openapi_document(), indent=2) + "\n"


routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi_endpoint(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(openapi_document())
