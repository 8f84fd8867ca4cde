"""OTLP trace requests decoded into :class:`SpanRecord` values (only what the mapping reads).

Both OTLP/HTTP encodings go through the official ``opentelemetry-proto`` message
``ExportTraceServiceRequest``: binary protobuf (``application/x-protobuf``, the OTLP default) is
parsed directly; JSON (``application/json``, also the Collector's file exporter, one request per
line) is parsed as a dict and converted with ``google.protobuf.json_format`` after its trace and
span ids are turned from OTLP JSON's hex into protobuf JSON's base64 (the one way OTLP JSON
differs from the canonical protobuf JSON mapping; see the OTLP spec, "JSON Protobuf Encoding").

A span with malformed ids (trace id not 16 bytes or all zero, span id not 8 bytes, parent id
neither empty nor 8 bytes) or times (zero, end before start, longer than a week) is not turned
into a record; it is counted under a reason in :class:`DecodeResult.ignored`.
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from hermes_sdk.graph.records import MAX_NAME_CHARS, MAX_SERVICE_S, MAX_TOKENS

if TYPE_CHECKING:  # the package is optional: imported lazily by load_proto()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

NS_PER_S: Final = 1_000_000_000
MAX_SPAN_NS: Final = int(MAX_SERVICE_S * NS_PER_S)
STATUS_CODE_ERROR: Final = 2
"""``Status.StatusCode.STATUS_CODE_ERROR`` in ``opentelemetry/proto/trace/v1/trace.proto``."""

# Attribute keys the mapping reads (everything else on a span is skipped unread).
OPERATION: Final = "gen_ai.operation.name"
MODEL: Final = "gen_ai.request.model"
TOOL_NAME: Final = "gen_ai.tool.name"
INPUT_TOKENS: Final = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS: Final = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
OI_KIND: Final = "openinference.span.kind"
OI_INPUT_TOKENS: Final = "llm.token_count.prompt"
OI_OUTPUT_TOKENS: Final = "llm.token_count.completion"
OI_MODEL: Final = "llm.model_name"
TL_KIND: Final = "traceloop.span.kind"
TL_REQUEST_TYPE: Final = "llm.request.type"
SERVICE_NAME: Final = "service.name"


class OtlpUnavailable(ImportError):
    """Raised when ``opentelemetry-proto`` is not installed (``pip install 'hermes-sdk[otlp]'``)."""


class OtlpDecodeError(ValueError):
    """Raised for a body that is not an OTLP ``ExportTraceServiceRequest`` in its encoding."""


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One ended span as the mapping sees it (times in unix nanoseconds, ids in lowercase hex).

    ``app`` is the span's app name (the configured attribute, else the resource's
    ``service.name``); ``unit_name`` the configured unit-name attribute if the span has it.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    failed: bool
    app: str | None
    operation: str | None = None
    oi_kind: str | None = None
    tl_kind: str | None = None
    model: str | None = None
    tool: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    unit_name: str | None = None


@dataclass(slots=True)
class DecodeResult:
    """The spans of one request, and how many spans were skipped per reason."""

    spans: list[SpanRecord] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)

    def ignore(self, reason: str, n: int = 1) -> None:
        """Count ``n`` spans skipped for ``reason``."""
        self.ignored[reason] = self.ignored.get(reason, 0) + n


def load_proto() -> type[ExportTraceServiceRequest]:
    """The ``ExportTraceServiceRequest`` class; :class:`OtlpUnavailable` when not installed."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError as exc:
        raise OtlpUnavailable(
            "OTLP ingestion needs opentelemetry-proto: pip install 'hermes-sdk[otlp]'"
        ) from exc
    return ExportTraceServiceRequest


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse a binary OTLP trace request; :class:`OtlpDecodeError` when it is not one."""
    request = load_proto()()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # google.protobuf.message.DecodeError (and nothing else expected)
        raise OtlpDecodeError(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    return request


_ID_KEYS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(span: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = span.get(key)
        if isinstance(value, str) and value:
            try:
                span[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise OtlpDecodeError(f"span {key} is not hex: {value[:40]!r}") from None
    span.pop("links", None)  # links carry ids too and are never read; drop them unconverted


def _objects(value: object, what: str) -> Iterator[dict[str, Any]]:
    if value is None:
        return
    if not isinstance(value, list):
        raise OtlpDecodeError(f"{what} must be a list")
    for item in value:
        if not isinstance(item, dict):
            raise OtlpDecodeError(f"{what} items must be objects")
        yield item


def parse_json_object(doc: object) -> ExportTraceServiceRequest:
    """Convert a decoded OTLP JSON document (hex ids) to the protobuf message."""
    json_format: Any = importlib.import_module("google.protobuf.json_format")  # no stubs
    if not isinstance(doc, dict):
        raise OtlpDecodeError("an OTLP JSON body must be an object")
    for rs in _objects(doc.get("resourceSpans", doc.get("resource_spans")), "resourceSpans"):
        scopes = rs.get("scopeSpans", rs.get("scope_spans"))
        for ss in _objects(scopes, "scopeSpans"):
            for span in _objects(ss.get("spans"), "spans"):
                _hex_ids_to_base64(span)
    request = load_proto()()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise OtlpDecodeError(f"not an OTLP JSON trace request: {exc}") from None
    return request


def _value(any_value: Any) -> object:
    which = any_value.WhichOneof("value")
    if which == "string_value":
        return any_value.string_value
    if which == "int_value":
        return any_value.int_value
    if which == "double_value":
        return any_value.double_value
    if which == "bool_value":
        return any_value.bool_value
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS and value.isprintable():
        return value
    return None


def _tokens(value: object) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _resource_app(resource: Any, app_attribute: str | None) -> str | None:
    service = configured = None
    for kv in resource.attributes:
        if kv.key == SERVICE_NAME:
            service = _text(_value(kv.value))
        elif app_attribute is not None and kv.key == app_attribute:
            configured = _text(_value(kv.value))
    return configured or service


def spans_of(
    request: ExportTraceServiceRequest,
    *,
    app_attribute: str | None = None,
    unit_attribute: str | None = None,
) -> DecodeResult:
    """The request's spans as records; malformed ones counted in ``ignored`` by reason.

    ``app_attribute`` (a span or resource attribute) names the app instead of the resource's
    ``service.name``; ``unit_attribute`` (a span attribute) names a unit instead of the span name.
    """
    out = DecodeResult()
    wanted: dict[str, str] = {
        OPERATION: "operation",
        MODEL: "model",
        OI_MODEL: "model",
        TOOL_NAME: "tool",
        OI_KIND: "oi_kind",
        TL_KIND: "tl_kind",
        TL_REQUEST_TYPE: "tl_request_type",
        OI_INPUT_TOKENS: "input_tokens",
        OI_OUTPUT_TOKENS: "output_tokens",
        **dict.fromkeys(INPUT_TOKENS, "input_tokens"),
        **dict.fromkeys(OUTPUT_TOKENS, "output_tokens"),
    }
    if app_attribute is not None:
        wanted[app_attribute] = "app"
    if unit_attribute is not None:
        wanted[unit_attribute] = "unit_name"
    append = out.spans.append
    for rs in request.resource_spans:
        resource_app = _resource_app(rs.resource, app_attribute)
        for ss in rs.scope_spans:
            for span in ss.spans:
                record = _record(span, resource_app, wanted, out)
                if record is not None:
                    append(record)
    return out


def _record(
    span: Any, resource_app: str | None, wanted: Mapping[str, str], out: DecodeResult
) -> SpanRecord | None:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16 or not any(trace_id) or len(span_id) != 8 or not any(span_id):
        out.ignore("bad_ids")
        return None
    if parent and (len(parent) != 8 or parent == span_id):
        out.ignore("bad_ids")
        return None
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start <= 0 or end < start or end - start > MAX_SPAN_NS:
        out.ignore("bad_times")
        return None
    name = span.name
    name = name if 0 < len(name) <= MAX_NAME_CHARS and name.isprintable() else "unnamed"
    status = span.status.code == STATUS_CODE_ERROR if span.HasField("status") else False
    found: dict[str, object] = {}
    for kv in span.attributes:
        slot = wanted.get(kv.key)
        if slot is not None and slot not in found:
            found[slot] = _value(kv.value)
    if not found:  # most spans of a trace: steps and plumbing with no GenAI attributes
        return SpanRecord(
            trace_id.hex(), span_id.hex(), parent.hex() if any(parent) else None,
            name, start, end, status, resource_app,
        )  # fmt: skip
    operation = _text(found.get("operation"))
    request_type = _text(found.get("tl_request_type"))
    if operation is None and request_type is not None:  # OpenLLMetry's llm.request.type
        operation = {"chat": "chat", "completion": "text_completion"}.get(
            request_type, "embeddings" if request_type == "embedding" else None
        )
    return SpanRecord(
        trace_id=trace_id.hex(),
        span_id=span_id.hex(),
        parent_id=parent.hex() if any(parent) else None,
        name=name,
        start_ns=start,
        end_ns=end,
        failed=status,
        app=_text(found.get("app")) or resource_app,
        operation=operation,
        oi_kind=_text(found.get("oi_kind")),
        tl_kind=_text(found.get("tl_kind")),
        model=_text(found.get("model")),
        tool=_text(found.get("tool")),
        input_tokens=_tokens(found.get("input_tokens")),
        output_tokens=_tokens(found.get("output_tokens")),
        unit_name=_text(found.get("unit_name")),
    )
