"""Hypothesis strategies for fuzzing every endpoint of ``docs/openapi.json`` and the gateway.

A case is (method, path, body bytes, headers): path parameters are drawn from hostile names, the
body is generated from the operation's JSON schema and then, most of the time, mutated (a field
dropped, replaced by a random JSON value, wrong type, the whole body replaced by garbage bytes).
:func:`problem` says what is wrong with an answer: any 5xx, or a 4xx that is not a JSON body
``{"error": {"code": <non-empty str>, "message": <str>}}``.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

OPENAPI: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text()
)
SIM_MODEL = "sim-model"

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
ANY_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_NAMES = st.sampled_from(
    ["r1", "qa", "gpu", "..", "%2e%2e", "a/b", "\u00e9\u4e2d", "x" * 300, "nul\x00", "-", "run id"]
) | st.text(min_size=1, max_size=20)


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: method, path template, body schema (None: no body) and query params."""

    method: str
    path: str
    body: dict[str, Any] | None
    query: tuple[tuple[str, dict[str, Any]], ...] = ()


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        node: Any = OPENAPI
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node  # type: ignore[no-any-return]
    return schema


def openapi_operations() -> list[Operation]:
    """Every operation of the control API document."""
    ops = []
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            body = None
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                body = content["application/json"]["schema"]
            query = tuple(
                (p["name"], p.get("schema", {}))
                for p in op.get("parameters", [])
                if p["in"] == "query"
            )
            ops.append(Operation(method.upper(), path, body, query))
    return ops


_MESSAGES = {
    "type": "array",
    "minItems": 1,
    "maxItems": 3,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["user", "system"]},
            "content": {"type": "string", "maxLength": 40},
        },
    },
}
_GEN = {
    "model": {"enum": [SIM_MODEL, "no-such-model"]},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4},
    "stream": {"type": "boolean"},
    "priority": {"type": "integer"},
    "metadata": {
        "type": "object",
        "properties": {"hermes_app": {"type": "string"}, "hermes_run": {"type": "string"}},
    },
}
GATEWAY_OPERATIONS = [
    Operation(
        "POST",
        "/v1/chat/completions",
        {
            "type": "object",
            "required": ["model", "messages"],
            "properties": {**_GEN, "messages": _MESSAGES},
        },
    ),
    Operation(
        "POST",
        "/v1/completions",
        {
            "type": "object",
            "required": ["model", "prompt"],
            "properties": {**_GEN, "prompt": {"type": "string", "maxLength": 40}},
        },
    ),
    Operation(
        "POST",
        "/v1/embeddings",
        {
            "type": "object",
            "required": ["model", "input"],
            "properties": {"model": _GEN["model"], "input": {"type": "string", "maxLength": 40}},
        },
    ),
    Operation("GET", "/v1/models", None),
]


def from_schema(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for the subset of JSON Schema the documents use."""
    schema = _resolve(schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):  # wire models: optional fields, the tagged event union
        if key in schema:
            return st.one_of([from_schema(s) for s in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    if kind == "string":
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 30), 30)
        )
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "number":
        lo = schema.get("minimum")
        return st.floats(
            min_value=lo, max_value=min(schema.get("maximum", 1e6), 1e6), allow_nan=False
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {})),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 4),
        )
    if kind == "object" or "properties" in schema:
        props: Mapping[str, Any] = schema.get("properties", {})
        required = [k for k in schema.get("required", []) if k in props]
        optional = [k for k in props if k not in required]
        if not props:
            return st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=3)
        return st.fixed_dictionaries(
            {k: from_schema(props[k]) for k in required},
            optional={k: from_schema(props[k]) for k in optional},
        )
    return ANY_JSON


DEEP_JSON = b'{"a":' + b"[" * 5000
"""Nesting too deep for Python's JSON decoder (a RecursionError, once answered 500)."""


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> bytes:
    """A valid body, or one mutation of it, as bytes."""
    value = draw(valid)
    how = draw(
        st.sampled_from(["valid", "drop", "replace", "wrap", "random", "bytes", "empty", "deep"])
    )
    if how in ("drop", "replace") and isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        if how == "drop":
            del value[key]
        else:
            value[key] = draw(ANY_JSON)
    elif how == "wrap":
        value = [value]
    elif how == "random":
        value = draw(ANY_JSON)
    elif how == "bytes":
        return draw(st.binary(max_size=64))
    elif how == "empty":
        return b""
    elif how == "deep":
        return DEEP_JSON
    return json.dumps(value).encode()


@dataclass(frozen=True, slots=True)
class Case:
    """One request to send."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]


@st.composite
def cases(draw: st.DrawFn, ops: list[Operation], api_key: str | None) -> Case:
    """A request to one of ``ops`` with hostile path parameters and a mutated body."""
    op = draw(st.sampled_from(ops))
    path = op.path
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        value = draw(HOSTILE_NAMES)
        path = path[:start] + urllib.parse.quote(value, safe="") + path[end + 1 :]
    query: dict[str, Any] = {
        name: draw(from_schema(schema) | st.text(max_size=8)) for name, schema in op.query
    }
    add_query: bool = draw(st.booleans())
    if query and add_query:
        path += "?" + urllib.parse.urlencode({k: str(v) for k, v in query.items()})
    body = draw(mutated(from_schema(op.body))) if op.body is not None else None
    headers = {"Content-Type": "application/json"}
    if api_key is not None and draw(st.integers(0, 9)) > 0:
        headers["Authorization"] = f"Bearer {api_key}"
    for name in ("X-Hermes-Rank", "X-Hermes-Priority", "X-Hermes-Deadline"):
        if draw(st.integers(0, 4)) == 0:
            headers[name] = draw(st.sampled_from(["-1e308", "nan", "0", "abc", "1e400"]))
    return Case(op.method, path, body, headers)


RELAYED_HEADER = "X-Hermes-Queue-Wait"
"""Set by the gateway on answers relayed from the upstream engine (its own errors lack it)."""


def send(url: str, case: Case, timeout_s: float = 30.0) -> tuple[int, str, bytes]:
    """Send a case over a fresh connection: (status, content type, body).

    The content type of an answer the gateway relayed from the engine is prefixed ``relayed;``.
    """
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request(case.method, case.path, body=case.body, headers=case.headers)
        resp = conn.getresponse()
        ctype = resp.getheader("Content-Type", "")
        if resp.getheader(RELAYED_HEADER) is not None:
            ctype = "relayed;" + ctype
        return resp.status, ctype, resp.read()
    finally:
        conn.close()


def problem(status: int, content_type: str, body: bytes) -> str | None:
    """Why an answer is unacceptable, or None.

    An engine error the gateway relays (OpenAI shape, e.g. ``"code": 400``) must be a JSON
    ``{"error": {...}}`` object but keeps the engine's own fields; an engine 5xx relayed as is
    is the engine's failure, not the server's (the benchmark counts them separately).
    """
    relayed = content_type.startswith("relayed;")
    if status >= 500 and not relayed:
        return f"HTTP {status}: {body[:200]!r}"
    if status < 400 or (relayed and status >= 500):  # the engine's own failure, passed on as is
        return None
    content_type = content_type.removeprefix("relayed;")
    if not content_type.startswith("application/json"):
        return f"HTTP {status} with content type {content_type!r}"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"HTTP {status} with a non-JSON body {body[:200]!r}"
    err = doc.get("error") if isinstance(doc, dict) else None
    if relayed and isinstance(err, dict) and isinstance(err.get("message"), str):
        return None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str) or not err["code"]:
        return f"HTTP {status} without error.code: {body[:200]!r}"
    if not isinstance(err.get("message"), str):
        return f"HTTP {status} without error.message: {body[:200]!r}"
    return None
