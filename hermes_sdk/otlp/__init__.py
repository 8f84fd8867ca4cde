"""Learn PDGraphs from OpenTelemetry traces (OTLP): decode, span-to-unit mapping, run assembly.

Used by the scheduler's ``POST /v1/traces`` receiver and by ``hermes graph learn --from FILE``.
Decoding needs the optional ``opentelemetry-proto`` package (``pip install 'hermes-sdk[otlp]'``),
imported lazily: this package itself imports without it, and :class:`OtlpUnavailable` says so
when a request arrives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from hermes_sdk.otlp.assembler import AssemblyOutput, AssemblyStats, LiveUnit, TraceAssembler
from hermes_sdk.otlp.mapping import SpanMapping
from hermes_sdk.otlp.paths import run_path
from hermes_sdk.otlp.spans import (
    DecodeResult,
    OtlpDecodeError,
    OtlpUnavailable,
    SpanRecord,
    parse_json_object,
    parse_protobuf,
    spans_of,
)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
CONTENT_TYPES: Final = (PROTOBUF, JSON)


def decode(
    body: bytes,
    content_type: str,
    mapping: SpanMapping,
    *,
    loads: Callable[[bytes], object] = json.loads,
) -> DecodeResult:
    """Decode one OTLP/HTTP trace request body of ``content_type`` into span records.

    Raises :class:`OtlpDecodeError` for a malformed body (and ``json.JSONDecodeError`` from
    ``loads``), :class:`OtlpUnavailable` without ``opentelemetry-proto``, ``ValueError`` for
    another content type.
    """
    if content_type == PROTOBUF:
        request = parse_protobuf(body)
    elif content_type == JSON:
        request = parse_json_object(loads(body))
    else:
        raise ValueError(f"content type must be one of {CONTENT_TYPES}, got {content_type!r}")
    return spans_of(
        request, app_attribute=mapping.app_attribute, unit_attribute=mapping.unit_attribute
    )


__all__ = [
    "CONTENT_TYPES",
    "JSON",
    "PROTOBUF",
    "AssemblyOutput",
    "AssemblyStats",
    "DecodeResult",
    "LiveUnit",
    "OtlpDecodeError",
    "OtlpUnavailable",
    "SpanMapping",
    "SpanRecord",
    "TraceAssembler",
    "decode",
    "run_path",
]
