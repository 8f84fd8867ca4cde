"""Hints in each serving stack's own request fields (one place, used by every delivery path).

``openai_kwargs()``, the LangGraph httpx hooks and the gateway's ``engine=NAME`` upstream option
all call :func:`encode`. Each stack's field names, types and polarity were read in that stack's
own code and docs (cited in ``docs/protocol.md``):

- ``vllm``: body ``priority`` (int, lower runs first; needs ``--scheduling-policy priority``).
- ``sglang``: body ``priority`` (int, higher first by default; needs
  ``--enable-priority-scheduling``).
- ``litellm``: body ``priority`` (int, lower first: the Router/proxy scheduler queue).
- ``dynamo``: body ``nvext.agent_hints.priority`` (i32, higher = more important; Dynamo maps it to
  each backend's polarity), ``nvext.agent_hints.osl`` (u32 expected output tokens) and, with a
  retention hint, ``nvext.cache_control`` (``{"type": "ephemeral", "ttl": "<seconds>"}``).
- ``gie`` (llm-d / Gateway API Inference Extension): headers
  ``x-gateway-inference-fairness-id`` (the tenant), ``x-gateway-inference-objective`` (the name
  of an ``InferenceObjective`` whose ``spec.priority`` is the band, see :func:`gie_objectives`)
  and ``x-slo-ttft-ms`` (from the run's deadline).
- ``openai``: no engine field (only the ``X-Hermes-*`` headers).

A rank is mapped to a level with :func:`~hermes_sdk.client.hints.rank_to_level` (log scale,
monotone; no rank: the middle level), then to each stack's scale and polarity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from hermes_sdk.client.hints import (
    PRIORITY_LEVELS,
    Hints,
    rank_to_level,
    rank_to_priority,
)

ENGINE_NAMES: Final[tuple[str, ...]] = ("vllm", "sglang", "openai", "dynamo", "gie", "litellm")
"""Every engine/stack name :func:`encode` knows."""
GIE_FAIRNESS_HEADER: Final = "x-gateway-inference-fairness-id"
GIE_OBJECTIVE_HEADER: Final = "x-gateway-inference-objective"
GIE_TTFT_SLO_HEADER: Final = "x-slo-ttft-ms"
GIE_BANDS: Final = 4
"""Default number of GIE priority bands (one ``InferenceObjective`` each)."""
GIE_OBJECTIVE_PREFIX: Final = "hermes-band"
DYNAMO_I32_MAX: Final = 2**31 - 1
DYNAMO_U32_MAX: Final = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Encoded:
    """One call's hints in a stack's fields: HTTP ``headers`` and top-level JSON ``body`` fields."""

    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, object] = field(default_factory=dict)


def check_engine(engine: str) -> str:
    """``engine`` if it is a known name, else ValueError listing the names."""
    if engine not in ENGINE_NAMES:
        raise ValueError(f"engine must be one of {sorted(ENGINE_NAMES)}, got {engine!r}")
    return engine


def engine_priority(
    rank_s: float | None,
    engine: str,
    *,
    levels: int = PRIORITY_LEVELS,
    higher_first: bool | None = None,
) -> int | None:
    """The integer priority ``engine`` reads for a rank in seconds (None: no priority field).

    ``levels`` distinct values ``0..levels-1``. Lower-first stacks (vLLM, LiteLLM) get the level,
    higher-first stacks (SGLang, Dynamo's API, GIE bands) ``levels - 1 - level``; pass
    ``higher_first`` to override (e.g. SGLang with ``--schedule-low-priority-values-first``).
    """
    check_engine(engine)
    if engine == "openai":
        return None
    return rank_to_priority(rank_s, engine, levels=levels, higher_first=higher_first)


def gie_objective(rank_s: float | None, bands: int = GIE_BANDS) -> str:
    """The ``InferenceObjective`` name for a rank: ``hermes-band-0`` is the most urgent band."""
    return f"{GIE_OBJECTIVE_PREFIX}-{rank_to_level(rank_s, bands)}"


def gie_objectives(pool: str, bands: int = GIE_BANDS) -> str:
    """YAML of the ``InferenceObjective`` resources the ``gie`` encoding names, for ``pool``.

    Band ``i`` gets ``spec.priority = bands - 1 - i`` (GIE serves higher priorities first).
    """
    docs = []
    for i in range(bands):
        docs.append(
            "apiVersion: inference.networking.x-k8s.io/v1alpha2\n"
            "kind: InferenceObjective\n"
            f"metadata:\n  name: {GIE_OBJECTIVE_PREFIX}-{i}\n"
            f"spec:\n  priority: {bands - 1 - i}\n  poolRef:\n    name: {pool}\n"
        )
    return "---\n".join(docs)


def dynamo_ttl(retain_s: float) -> str:
    """Dynamo's ``cache_control.ttl``: whole seconds as a string (Dynamo clamps to 300..3600)."""
    return str(max(1, math.ceil(retain_s)))


def engine_fields(
    engine: str,
    rank_s: float | None,
    *,
    levels: int = PRIORITY_LEVELS,
    higher_first: bool | None = None,
    tenant: str | None = None,
    deadline_s: float | None = None,
    output_tokens: int | None = None,
    retain_s: float | None = None,
    gie_bands: int = GIE_BANDS,
) -> Encoded:
    """The fields ``engine`` reads for these hints (without the ``X-Hermes-*`` headers).

    Fields whose hint is unknown are left out: no ``osl`` without ``output_tokens``, no cache
    control without a positive ``retain_s``, no SLO without a deadline, no fairness id without a
    tenant. A missing rank still gives the middle priority (neither jumps nor starves).
    """
    check_engine(engine)
    headers: dict[str, str] = {}
    body: dict[str, object] = {}
    priority = engine_priority(rank_s, engine, levels=levels, higher_first=higher_first)
    if engine in ("vllm", "sglang", "litellm"):
        body["priority"] = priority
    elif engine == "dynamo":
        agent: dict[str, object] = {"priority": min(priority or 0, DYNAMO_I32_MAX)}
        if output_tokens is not None and output_tokens >= 0:
            agent["osl"] = min(int(output_tokens), DYNAMO_U32_MAX)
        nvext: dict[str, object] = {"agent_hints": agent}
        if retain_s is not None and retain_s > 0:
            nvext["cache_control"] = {"type": "ephemeral", "ttl": dynamo_ttl(retain_s)}
        body["nvext"] = nvext
    elif engine == "gie":
        if tenant:
            headers[GIE_FAIRNESS_HEADER] = tenant
        headers[GIE_OBJECTIVE_HEADER] = gie_objective(rank_s, gie_bands)
        if deadline_s is not None and deadline_s > 0:
            headers[GIE_TTFT_SLO_HEADER] = str(max(1, math.ceil(deadline_s * 1000)))
    return Encoded(headers=headers, body=body)


def encode(
    hints: Hints | None,
    engine: str,
    *,
    levels: int = PRIORITY_LEVELS,
    higher_first: bool | None = None,
    gie_bands: int = GIE_BANDS,
) -> Encoded:
    """``hints`` in ``engine``'s fields plus the ``X-Hermes-*`` headers; empty without hints.

    ``hints.tenant`` becomes GIE's fairness id, ``hints.predicted_output_tokens`` Dynamo's
    ``osl`` and ``hints.retain_s`` Dynamo's cache control (see :func:`engine_fields`).
    Raises ValueError for an unknown engine.
    """
    check_engine(engine)
    if hints is None:
        return Encoded()
    fields = engine_fields(
        engine,
        hints.rank_s,
        levels=levels,
        higher_first=higher_first,
        tenant=hints.tenant,
        deadline_s=hints.deadline_s,
        output_tokens=hints.predicted_output_tokens,
        retain_s=hints.retain_s,
        gie_bands=gie_bands,
    )
    return Encoded(headers={**hints.headers(), **fields.headers}, body=fields.body)


CLIENT_PRIORITY_FIELDS: Final = ("priority", "strict_priority", "latency_sensitivity")
"""Dynamo ``nvext.agent_hints`` fields that order queues: a gateway drops client-sent ones."""


def strip_client_priority(body: dict[str, object]) -> None:
    """Remove every queue-ordering field a client may have sent (the gateway sets its own):
    body ``priority`` and Dynamo's ``nvext.agent_hints`` priority fields."""
    body.pop("priority", None)
    nvext = body.get("nvext")
    agent = nvext.get("agent_hints") if isinstance(nvext, dict) else None
    if isinstance(agent, dict):
        for name in CLIENT_PRIORITY_FIELDS:
            agent.pop(name, None)


def override_body(target: dict[str, object], fields: dict[str, object]) -> None:
    """Set ``fields`` in a JSON body, replacing the caller's values (nested dicts merge)."""
    for key, value in fields.items():
        have = target.get(key)
        if isinstance(have, dict) and isinstance(value, dict):
            override_body(have, value)
        else:
            target[key] = value


def merge_body(target: dict[str, object], fields: dict[str, object]) -> bool:
    """Add ``fields`` to a JSON body, never replacing what the caller set (nested dicts merge).

    Returns whether anything was added.
    """
    changed = False
    for key, value in fields.items():
        have = target.get(key)
        if key not in target:
            target[key] = value
            changed = True
        elif isinstance(have, dict) and isinstance(value, dict):
            changed = merge_body(have, value) or changed
    return changed
