"""OpenTelemetry export of instrumented runs (optional extra: ``pip install hermes-sdk[otel]``).

``hermes_sdk.otel.instrument(tracer_provider=None)`` makes every run and unit a span carrying
OTel GenAI semantic-convention attributes and ``hermes.*`` attributes (see :mod:`._spans`).
Only this package imports ``opentelemetry``; the core SDK works without it.
"""

from __future__ import annotations

try:
    import opentelemetry.trace  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "hermes_sdk.otel needs OpenTelemetry: pip install 'hermes-sdk[otel]'"
    ) from exc

from hermes_sdk.otel._spans import (
    OPERATION_BY_KIND,
    SpanObserver,
    instrument,
    uninstrument,
    unit_attributes,
    unit_span_name,
)

__all__ = [
    "OPERATION_BY_KIND",
    "SpanObserver",
    "instrument",
    "uninstrument",
    "unit_attributes",
    "unit_span_name",
]
