"""Real OTel spans for the OTLP tests: built with the OpenTelemetry SDK (explicit times) and
encoded by the official OTLP encoder, exactly as the OTLP/HTTP exporter sends them."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import Span, Status, StatusCode

NS = 1_000_000_000
T0 = 1_700_000_000.0

Attrs = Mapping[str, str | int | float | bool]


class Traces:
    """A tracer of one service whose ended spans are kept in order (oldest first)."""

    def __init__(self, service: str = "qa", resource: Attrs | None = None) -> None:
        attrs = {"service.name": service, **(resource or {})}
        self.provider = TracerProvider(resource=Resource.create(attrs))
        self.tracer = self.provider.get_tracer("hermes-tests")
        self.ended: list[ReadableSpan] = []

    def span(
        self,
        name: str,
        start_s: float,
        end_s: float | None,
        parent: Span | None = None,
        attrs: Attrs | None = None,
        error: bool = False,
    ) -> Span:
        """A span from ``start_s`` to ``end_s`` (seconds after T0); None leaves it open."""
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            name, context=ctx, attributes=dict(attrs or {}), start_time=int((T0 + start_s) * NS)
        )
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        if end_s is not None:
            self.end(span, end_s)
        return span

    def end(self, span: Span, end_s: float) -> None:
        """End an open span at ``end_s`` seconds after T0."""
        span.end(end_time=int((T0 + end_s) * NS))
        assert isinstance(span, ReadableSpan)
        self.ended.append(span)

    def take(self) -> list[ReadableSpan]:
        """The spans ended since the last take."""
        out, self.ended = self.ended, []
        return out


def chat(model: str = "m", input_tokens: int = 10, output_tokens: int = 5) -> dict[str, Any]:
    """Attributes of an OTel GenAI chat span."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }


def protobuf(spans: Sequence[ReadableSpan]) -> bytes:
    """The OTLP/HTTP protobuf body the exporter would send."""
    return encode_spans(spans).SerializeToString()


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP JSON document (hex ids, as the Collector's file exporter writes)."""
    doc: dict[str, Any] = json_format.MessageToDict(encode_spans(spans))
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return doc


def json_line(spans: Sequence[ReadableSpan]) -> str:
    """One line of a Collector file-exporter file."""
    return json.dumps(otlp_json(spans))
