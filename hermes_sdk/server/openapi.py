"""The OpenAPI 3.1 document of the scheduler server (served at ``/openapi.json``, kept in docs/).

``components/schemas`` are generated from the wire models (:mod:`hermes_sdk.wire.messages`, the
hints and prewarm-signal records), the types the server decodes and the clients encode with;
request bodies inline their model's schema. The route list is explicit (static ``/ui`` files are
not listed). tests/server/test_openapi_routes.py checks it against the app's router and against
docs/openapi.json; regenerate that with ``python -c "from hermes_sdk.server.openapi import
openapi_json as j; print(j(), end='')" > docs/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

import hermes_sdk
from hermes_sdk.client.hints import QUEUE_WAIT_HEADER
from hermes_sdk.graph.export import graph_schema
from hermes_sdk.prewarm.planner import PrewarmSignal
from hermes_sdk.server.app_classes import MAX_WINDOW_S
from hermes_sdk.server.control import GRAPH_FORMATS
from hermes_sdk.server.prewarm_routes import MAX_WAIT_S
from hermes_sdk.server.scheduler import RunHints
from hermes_sdk.wire import codec, messages
from hermes_sdk.wire.app_classes import AppClasses

JSON: Final = "application/json"
_MODELS: Final = (
    *(getattr(messages, name) for name in ("EventBatch", "EventsApplied", "StartRun", "RunStarted",
      "EndRun", "RunEnded", "Acquire", "Lease", "PrewarmReport", "Error")),
    RunHints,
    PrewarmSignal,
    AppClasses,
)  # fmt: skip
"""The wire models whose schemas are ``components/schemas`` (with the types they refer to)."""
SCHEMAS: Final[dict[str, Any]] = {**codec.json_schemas(_MODELS)[1], "PDGraph": graph_schema()}
_NAME, _OBJECT = {"type": "string", "minLength": 1, "maxLength": 256}, {"type": "object"}
_PREWARM = "Only when prewarm is on (`--prewarm`, `[prewarm]`); else 404."
_GATEWAY = "Only when the server has upstreams (`--upstream`, `[[upstreams]]`); else 404."


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    return out


def _err(description: str) -> dict[str, Any]:
    return _ok(description, _ref("Error"))


def _obj(required: list[str] | None = None, **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required or sorted(props), "properties": props}


_COMMON_ERRORS: Final = {
    "400": _err("Malformed JSON (invalid_json) or a field of the wrong type or range "
                "(invalid_request: the message names the field and why)"),
    "401": _err("Missing or unknown API key (unauthorized), past its not_after (key_expired), "
                "or removed by a reload while the request waited (key_revoked)"),
    "413": _err("Body larger than the server's limit"),
    "429": _err("The tenant is over its rate limit (rate_limited, Retry-After header)"),
}  # fmt: skip


def _op(op_id: str, tag: str, summary: str, responses: dict[str, Any], *,
        body: str | dict[str, Any] | None = None, body_required: bool = True,
        params: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:  # fmt: skip
    """An authenticated operation: its responses plus the errors every such call can get.
    ``body`` names a wire model (inlined) or is a schema; ``params`` names path parameters."""
    out: dict[str, Any] = {
        "operationId": op_id,
        "tags": [tag],
        "summary": summary,
        "responses": {**_COMMON_ERRORS, **responses},
        **extra,
    }
    if params:
        path_params = [{"name": p, "in": "path", "required": True, "schema": _NAME} for p in params]
        out["parameters"] = path_params + out.get("parameters", [])
    if body is not None:
        schema = SCHEMAS[body] if isinstance(body, str) else body
        out["requestBody"] = {"required": body_required, "content": {JSON: {"schema": schema}}}
    return out


def _public(op_id: str, summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    """An operation served without a key (auth.PUBLIC_PATHS)."""
    return {"operationId": op_id, "tags": ["service"], "summary": summary, "security": [],
            "responses": {"200": ok}}  # fmt: skip


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _control_paths() -> dict[str, Any]:
    no_run, run = _err("No such run (unknown_run)"), ("run_id",)
    lease_gone = _err("Unknown or reclaimed lease (unknown_lease)")
    return {
        "/v1/runs": {"post": _op("startRun", "control", "Start a run",
            {"201": _ok("Run started", _ref("RunStarted")), "409": _err("Other app (conflict)")},
            body="StartRun")},
        "/v1/runs/{run_id}": {"get": _op("getRun", "control", "Tracked state of a run",
            {"200": _ok("Run", _OBJECT), "404": no_run}, params=run)},
        "/v1/runs/{run_id}/end": {"post": _op("endRun", "control",
            "End a run; its path is stored durably before the answer",
            {"200": _ok("Ended", _ref("RunEnded")), "404": no_run}, params=run,
            body="EndRun", body_required=False)},
        "/v1/runs/{run_id}/hints": {"get": _op("getRunHints", "control",
            "Server-side rank and remaining-demand prediction of a run",
            {"200": _ok("Hints", _ref("RunHints")), "404": no_run}, params=run)},
        "/v1/events": {"post": _op("postEvents", "control",
            "Apply a batch of events (all or none)",
            {"200": _ok("Applied (paths durable)", _ref("EventsApplied"))}, body="EventBatch")},
        "/v1/backends": {"get": _op("listBackends", "leases",
            "Backends with slots in use and queue depth", {"200": _ok("List")})},
        "/v1/backends/{name}/acquire": {"post": _op("acquireSlot", "leases",
            "Long-poll for a slot on a backend",
            {"200": _ok("Granted", _ref("Lease")), "404": _err("Unknown backend"),
             "429": _err("Not granted within the timeout (queue_timeout), or the tenant is over "
                         "its rate limit (rate_limited); retry after retry_after_s")},
            params=("name",), body="Acquire", body_required=False)},
        "/v1/leases/{lease_id}/release": {"post": _op("releaseLease", "leases", "Release a slot",
            {"200": _ok("Released"), "404": lease_gone}, params=("lease_id",))},
        "/v1/leases/{lease_id}/renew": {"post": _op("renewLease", "leases",
            "Extend a held slot by the backend's lease_s",
            {"200": _ok("Renewed", _ref("Lease")), "404": lease_gone}, params=("lease_id",))},
        "/v1/apps": {"get": _op("listApps", "control", "The tenant's apps with a graph",
            {"200": _ok("List")})},
        "/v1/apps/{app}/graph": {"get": _op("getAppGraph", "control", "An app's PDGraph",
            {"200": {"description": "Graph: the PDGraph JSON document, DOT or Mermaid", "content": {
                ctype: {"schema": _ref("PDGraph") if ctype == JSON else {"type": "string"}}
                for ctype in GRAPH_FORMATS.values()}}, "404": _err("No such app")},
            params=("app",), parameters=[_query("format", {"enum": ["json", "dot", "mermaid"]})])},
    }  # fmt: skip


_APP_CLASSES_WINDOW: Final = {
    **_query("window_s", {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WINDOW_S}),
    "description": "Only runs that ended in the last window_s seconds (default: every kept run)",
}


def _dashboard_paths() -> dict[str, Any]:
    state = _obj(
        tenant={"type": "string"},
        policy={"type": "string"},
        now_s={"type": "number"},
        backends={"type": "array", "items": _OBJECT},
        prewarm={"type": ["object", "null"], "description": "null when prewarm is off"},
        runs=_OBJECT,
        apps={"type": "array", "items": _OBJECT},
    )
    svg = {"description": "SVG", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}
    return {
        "/v1/ui/state": {"get": _op("getDashboardState", "dashboard",
            "The dashboard's data for the key's tenant: policy, backends, prewarm, apps, "
            "running apps by predicted remaining demand", {"200": _ok("State", state)})},
        "/v1/ui/apps/{app}/graph.svg": {"get": _op("getDashboardGraphSvg", "dashboard",
            "An app's PDGraph drawn as SVG",
            {"200": svg, "404": _err("No such app (unknown_app)")}, params=("app",))},
        "/v1/ui/app_classes": {"get": _op("getAppClasses", "dashboard",
            "The key's tenant's apps: runs completed, mean, P95 and max completion time (s) "
            "over each app's recent runs", {"200": _ok("Per app", _ref("AppClasses"))},
            parameters=[_APP_CLASSES_WINDOW])},
    }  # fmt: skip


def _prewarm_paths() -> dict[str, Any]:
    signals = {"type": "array", "items": _ref("PrewarmSignal")}
    off = _err(f"Prewarm is off. {_PREWARM}")
    state = _obj(threshold={"type": "number"}, signals=signals,
                 backends={"type": "object", "additionalProperties": _OBJECT})  # fmt: skip
    wait = {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S}
    return {
        "/v1/prewarm": {"get": _op("getPrewarm", "prewarm",
            "Per backend: warm state, learned cold start and keep-alive, P(need), metrics",
            {"200": _ok("State", state), "404": off})},
        "/v1/prewarm/signals": {"get": _op("getPrewarmSignals", "prewarm",
            "Long-poll for the prewarm signals after sequence number `after`",
            {"200": _ok("Signals", _obj(seq={"type": "integer"}, signals=signals)), "404": off},
            parameters=[_query("after", {"type": "integer", "minimum": 0}),
                        _query("wait_s", wait)])},
        "/v1/prewarm/report": {"post": _op("reportPrewarm", "prewarm",
            "A backend reports it is ready (with its start-up time) or released",
            {"200": _ok("Recorded", _OBJECT), "404": off}, body="PrewarmReport")},
    }  # fmt: skip


_RUN_HEADERS: Final = [
    {"name": name, "in": "header", "required": False, "schema": schema,
     "description": f"{what} (or `metadata.{key}` in the body)"}
    for name, key, what, schema in (
        ("X-Hermes-App", "hermes_app", "App of the run the call belongs to", _NAME),
        ("X-Hermes-Run", "hermes_run", "Run the call belongs to", _NAME),
        ("X-Hermes-Unit", "hermes_unit", "Unit (node) of the call", _NAME),
        ("X-Hermes-Deadline", "hermes_deadline", "Run deadline, seconds", {"type": "number"}),
    )
]  # fmt: skip
_METADATA: Final = {
    "type": "object",
    "description": "the hermes_* keys name the run and are removed before forwarding",
    "properties": {"hermes_app": _NAME, "hermes_run": _NAME, "hermes_unit": _NAME,
                   "hermes_deadline": {"type": ["number", "string"]}},
}  # fmt: skip


def _gateway_op(op_id: str, summary: str, field: str, schema: dict[str, Any]) -> dict[str, Any]:
    body = {
        "type": "object",
        "required": ["model", field],
        "description": "Any other OpenAI field is forwarded as is; `priority` is dropped "
        "(the gateway sets the engine-native priority from the server's rank).",
        "properties": {
            "model": {"type": "string", "minLength": 1, "description": "routes to an upstream"},
            "stream": {"type": "boolean"},
            "stream_options": {"type": "object",
                               "properties": {"include_usage": {"type": "boolean"}}},
            "metadata": _METADATA,
            field: schema,
        },
    }  # fmt: skip
    wait = {"description": "Seconds the request waited for an upstream slot",
            "schema": {"type": "number", "minimum": 0}}  # fmt: skip
    ok = {"description": f"The upstream's answer (JSON, or SSE when `stream`). {_GATEWAY}",
          "headers": {QUEUE_WAIT_HEADER: wait},
          "content": {JSON: {"schema": _OBJECT}, "text/event-stream": {"schema": {}}}}  # fmt: skip
    return _op(op_id, "gateway", summary, {
        "200": ok,
        "404": _err("No upstream serves `model` (model_not_found)"),
        "429": _err("No upstream slot within the upstream's timeout_s (queue_timeout), or the "
                    "tenant is over its rate limit (rate_limited); Retry-After header"),
        "502": _err("The upstream failed (upstream_error)"),
    }, body=body, parameters=_RUN_HEADERS)  # fmt: skip


def _gateway_paths() -> dict[str, Any]:
    text = {"type": ["string", "array"]}
    message = _obj(["role"], role={"type": "string"}, content={"type": ["string", "array", "null"]})
    model = _obj(["id"], id={"type": "string"}, object={"type": "string"},
                 created={"type": "integer"}, owned_by={"type": "string"})  # fmt: skip
    models = _obj(object={"const": "list"}, data={"type": "array", "items": model})
    rank = "admitted by server-side rank"
    return {
        "/v1/chat/completions": {"post": _gateway_op("createChatCompletion",
            f"OpenAI chat completion, {rank}", "messages",
            {"type": "array", "minItems": 1, "items": message})},
        "/v1/completions": {"post": _gateway_op("createCompletion",
            f"OpenAI text completion, {rank}", "prompt", text)},
        "/v1/embeddings": {"post": _gateway_op("createEmbedding",
            f"OpenAI embeddings, {rank}", "input", text)},
        "/v1/models": {"get": _op("listModels", "gateway", "The models the upstreams serve",
            {"200": _ok(f"OpenAI model list. {_GATEWAY}", models)})},
    }  # fmt: skip


def _admin_paths() -> dict[str, Any]:
    count = {"type": "integer"}
    report = _obj(
        ["reloaded", "keys", "added", "removed", "restart_required"],
        reloaded={"const": True},
        keys={"type": "integer", "description": "keys in force after the reload"},
        added=count,
        removed=count,
        expired={"type": "integer", "description": "keys in force past their not_after"},
        rate_limit_rps={"type": ["number", "null"]},
        rate_limit_burst=count,
        metrics_public={"type": "boolean"},
        waits_ended={"type": "integer", "description": "acquires waiting with a removed key, "
                     "ended with 401 key_revoked"},
        restart_required={"type": "array", "items": {"type": "string"},
                          "description": "settings changed in the file that only apply at start"},
    )  # fmt: skip
    classes = {"get": _op("getAllAppClasses", "admin",
        "Every tenant's apps: runs completed, mean, P95 and max completion time (s), per app "
        "pooled over tenants and per tenant",
        {"200": _ok("Per app and per tenant", _ref("AppClasses")),
         "403": _err('The key has no role = "admin" (forbidden)')},
        parameters=[_APP_CLASSES_WINDOW])}  # fmt: skip
    reload = {"post": _op("reloadKeys", "admin",
        "Re-read API keys and rate limits from the config file, without a restart",
        {"200": _ok("In force now", report),
         "400": _err("The file is unreadable or invalid (config_error); nothing changed"),
         "403": _err('The key has no role = "admin" (forbidden)'),
         "409": _err("The server was not started with --config (no_config_file)")})}  # fmt: skip
    return {"/v1/admin/app_classes": classes, "/v1/admin/reload": reload}


def _traces_paths() -> dict[str, Any]:
    """The OTLP/HTTP traces receiver (docs/otel-traces.md)."""
    otlp_json = {
        "type": "object",
        "description": "OTLP JSON ExportTraceServiceRequest (hex trace and span ids)",
        "properties": {"resourceSpans": {"type": "array", "items": _OBJECT}},
    }
    protobuf = {"schema": {"type": "string", "format": "binary"}}
    ok = {
        "description": "ExportTraceServiceResponse in the request's encoding; "
        "partialSuccess.rejectedSpans counts malformed spans",
        "content": {"application/x-protobuf": protobuf, JSON: {"schema": _OBJECT}},
    }
    return {"/v1/traces": {"post": _op("postTraces", "traces",
        "Learn runs from OpenTelemetry spans (OTLP/HTTP, protobuf or JSON)",
        {"200": ok, "415": _err(
            "Content-Type is neither application/x-protobuf nor application/json "
            "(unsupported_media_type), or opentelemetry-proto is not installed "
            "(otlp_unavailable)")},
        requestBody={"required": True, "content": {"application/x-protobuf": protobuf,
                                                   JSON: {"schema": otlp_json}}})}}  # fmt: skip


_TAGS: Final = {
    "service": "Health, metrics and this document (no key)",
    "control": "Runs, events and learned graphs",
    "leases": "Admission: slots on backends",
    "dashboard": "Data of the `/ui` dashboard page",
    "prewarm": _PREWARM,
    "gateway": f"OpenAI-compatible gateway. {_GATEWAY}",
    "admin": 'Key rotation and every tenant\'s app classes (a key with role = "admin")',
    "traces": "OTLP/HTTP traces receiver (docs/otel-traces.md)",
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
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}},
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/healthz": {"get": _public("healthz", "Liveness", _ok("Alive", _OBJECT))},
            "/metrics": {"get": _public("metrics", "Prometheus metrics",
                                        {"description": "text exposition format"})},
            "/openapi.json": {"get": _public("openapi", "This document",
                                             _ok("OpenAPI document", _OBJECT))},
            **_control_paths(),
            **_dashboard_paths(),
            **_prewarm_paths(),
            **_gateway_paths(),
            **_admin_paths(),
            **_traces_paths(),
        },
    }  # fmt: skip


def openapi_json() -> str:
    """The document as the text of docs/openapi.json."""
    return json.dumps(openapi_document(), indent=2) + "\n"


routes = web.RouteTableDef()


@routes.get("/openapi.json")
async def openapi_endpoint(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(openapi_document())
