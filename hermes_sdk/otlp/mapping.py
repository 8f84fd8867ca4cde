"""The span-to-unit mapping: which spans are units, of which kind, and what a run is.

Rules (documented for platform teams in docs/otel-traces.md):

- A span's kind comes from, in order: ``kind_by_span_name`` (configured, exact span name);
  ``gen_ai.operation.name`` (``chat``/``text_completion``/``generate_content`` -> llm,
  ``embeddings``/``retrieval`` -> retriever, ``execute_tool`` -> tool; ``invoke_agent``,
  ``create_agent``, ``invoke_workflow`` are *steps*, see below); OpenInference's
  ``openinference.span.kind`` (LLM -> llm, EMBEDDING/RETRIEVER/RERANKER -> retriever, TOOL ->
  tool, CHAIN/AGENT/... -> step); OpenLLMetry's ``traceloop.span.kind`` (tool -> tool,
  workflow/task/agent -> step) and ``llm.request.type``. Any other span is *plain*.
- A run is a trace (``run_id`` = the trace id in hex), or with ``root_span_name`` set, the subtree
  of each span of that name (``run_id`` = ``<trace id>:<span id>``).
- The run's units are the children of its root span that are classified (llm, retriever, tool,
  step) or have a classified descendant; a step's kind is ``custom`` until stage formation lends
  it the kind of the calls inside (the rules of :mod:`hermes_sdk.instrument.stages`, plus: a step
  whose classified calls are all tools, or all retrievers, takes that kind). Plain spans with no
  classified descendant are ignored. A root that is itself an llm/retriever/tool span with no unit
  below it is a one-stage run.
- Unit name: ``unit_attribute`` when configured and present, else the span name.
- Tokens: ``gen_ai.usage.input_tokens``/``output_tokens`` (or the older ``prompt_tokens``/
  ``completion_tokens``, or OpenInference's ``llm.token_count.*``), summed over the outermost
  spans of a unit's subtree that carry them (so a call reported by two instrumentations nested in
  each other counts once). Service seconds: the unit span's duration. Status ERROR: a failed call
  (on the root: a failed run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import UNIT_KINDS, UnitKind, check_name
from hermes_sdk.otlp.spans import SpanRecord

SpanClass = UnitKind | Literal["step"]
"""A classified span: a unit kind, or ``step`` (an app step whose kind comes from its calls)."""

KIND_BY_OPERATION: Final[Mapping[str, SpanClass]] = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "retriever",
    "retrieval": "retriever",
    "execute_tool": "tool",
    "invoke_agent": "step",
    "create_agent": "step",
    "invoke_workflow": "step",
}
"""``gen_ai.operation.name`` values of the OTel GenAI semantic conventions."""
KIND_BY_OPENINFERENCE: Final[Mapping[str, SpanClass]] = {
    "LLM": "llm",
    "EMBEDDING": "retriever",
    "RETRIEVER": "retriever",
    "RERANKER": "retriever",
    "TOOL": "tool",
    "CHAIN": "step",
    "AGENT": "step",
    "GUARDRAIL": "step",
    "EVALUATOR": "step",
}
"""``openinference.span.kind`` values (OpenInference semantic conventions)."""
KIND_BY_TRACELOOP: Final[Mapping[str, SpanClass]] = {
    "tool": "tool",
    "workflow": "step",
    "task": "step",
    "agent": "step",
}
"""``traceloop.span.kind`` values (OpenLLMetry)."""


@dataclass(frozen=True, slots=True)
class SpanMapping:
    """How spans become runs and units (see the module docstring for the rules).

    ``idle_timeout_s``: a trace whose root span has not arrived this many seconds after its
    latest span is learned from what arrived (as a failed run: its end is unknown).
    ``max_spans_per_trace`` / ``max_open_traces`` bound memory: a bigger trace is dropped (its
    spans counted as ignored), and past the trace limit the oldest open trace is closed early.
    """

    kind_by_span_name: Mapping[str, SpanClass] = field(default_factory=dict)
    app_attribute: str | None = None
    unit_attribute: str | None = None
    root_span_name: str | None = None
    idle_timeout_s: float = 30.0
    max_spans_per_trace: int = 10_000
    max_open_traces: int = 10_000

    def __post_init__(self) -> None:
        for name, cls in self.kind_by_span_name.items():
            if cls != "step" and cls not in UNIT_KINDS:
                raise ConfigError(f"kind_by_span_name[{name!r}] must be a unit kind or 'step'")
        for attr in ("app_attribute", "unit_attribute", "root_span_name"):
            value = getattr(self, attr)
            if value is not None:
                check_name(value, attr)
        if not self.idle_timeout_s > 0:
            raise ConfigError(f"idle_timeout_s must be > 0, got {self.idle_timeout_s}")
        if self.max_spans_per_trace < 1 or self.max_open_traces < 1:
            raise ConfigError("max_spans_per_trace and max_open_traces must be >= 1")

    def classify(self, span: SpanRecord) -> SpanClass | None:
        """The span's class, or None for a plain span (not a unit unless it holds one)."""
        if self.kind_by_span_name:
            configured = self.kind_by_span_name.get(span.name)
            if configured is not None:
                return configured
        if span.operation is not None:
            found = KIND_BY_OPERATION.get(span.operation)
            if found is not None:
                return found
        if span.oi_kind is not None:
            found = KIND_BY_OPENINFERENCE.get(span.oi_kind.upper())
            if found is not None:
                return found
        if span.tl_kind is not None:
            return KIND_BY_TRACELOOP.get(span.tl_kind)
        return None

    def unit_name(self, span: SpanRecord) -> str:
        """The unit's node name: the configured attribute, else the span name."""
        return span.unit_name or span.name

    def backend(self, span: SpanRecord) -> str | None:
        """The unit's backend: the requested model of an llm/retriever span, a tool's name."""
        return span.model or span.tool


def mapping_from_env(env: dict[str, str] | None = None) -> SpanMapping:
    """The span mapping from ``HERMES_OTLP_*`` variables (see docs/otel-traces.md).

    ``HERMES_OTLP_APP_ATTRIBUTE``, ``HERMES_OTLP_UNIT_ATTRIBUTE``, ``HERMES_OTLP_ROOT_SPAN``,
    ``HERMES_OTLP_IDLE_TIMEOUT_S``, ``HERMES_OTLP_MAX_SPANS_PER_TRACE`` and
    ``HERMES_OTLP_KINDS`` (``"span name=kind,..."``, kind one of the unit kinds or ``step``).
    """
    env = dict(os.environ) if env is None else env
    kinds: dict[str, SpanClass] = {}
    for item in filter(None, env.get("HERMES_OTLP_KINDS", "").split(",")):
        name, sep, kind = item.rpartition("=")
        if not sep or not name.strip():
            raise ConfigError(f"HERMES_OTLP_KINDS item must be 'span name=kind', got {item!r}")
        kinds[name.strip()] = kind.strip()  # type: ignore[assignment]  # checked by SpanMapping
    try:
        idle = float(env.get("HERMES_OTLP_IDLE_TIMEOUT_S", "30"))
        max_spans = int(env.get("HERMES_OTLP_MAX_SPANS_PER_TRACE", "10000"))
    except ValueError as exc:
        raise ConfigError(f"HERMES_OTLP_*: {exc}") from None
    return SpanMapping(
        kind_by_span_name=kinds,
        app_attribute=env.get("HERMES_OTLP_APP_ATTRIBUTE") or None,
        unit_attribute=env.get("HERMES_OTLP_UNIT_ATTRIBUTE") or None,
        root_span_name=env.get("HERMES_OTLP_ROOT_SPAN") or None,
        idle_timeout_s=idle,
        max_spans_per_trace=max_spans,
    )
