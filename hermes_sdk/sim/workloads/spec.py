"""Builders for the simulator's workload JSON, so every suite spells the format the same way.

The workload format (issue 3 plus its extensions) is plain JSON: distributions are
``{"dist": name, ...}`` objects, units carry ``kind``, ``backend``, a ``fanout`` width law and
``next`` (or ``by_visit``) transitions; LLM units give token laws instead of a service law and the
backend's ``time_model`` turns tokens into seconds. These helpers only build dicts; they do not
validate (the simulator's schema does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
JsonObject: TypeAlias = dict[str, JsonValue]
Workload: TypeAlias = dict[str, JsonValue]
"""A workload document as accepted by ``hermes_sdk.sim.simulate``."""

LLM_PREFILL_S_PER_TOKEN: Final = 1e-4
"""Artifact time model: seconds per input token at batch size 1 (WORKLOADS.md)."""
LLM_DECODE_S_PER_TOKEN: Final = 0.06
"""Artifact time model: seconds per output token at batch size 1 (WORKLOADS.md)."""

BURSTY_PROFILE: Final[tuple[float, ...]] = (
    0.55, 0.60, 0.70, 0.85, 1.10, 1.60, 2.10, 1.80, 1.20, 0.90,
    0.75, 0.70, 0.80, 1.00, 1.35, 1.90, 2.40, 1.70, 1.10, 0.85,
    0.70, 0.60, 0.55, 0.65, 0.90, 1.30, 1.15, 0.85, 0.70, 0.60,
)  # fmt: skip
"""Relative arrival frequency of 30 buckets: two bursts (peak/mean 2.2) over a quiet base,
the shape of the production trace the paper used for its 30 buckets (values normalised to mean 1
by :func:`trace_arrival`)."""


def deterministic(value: float) -> JsonObject:
    """A constant."""
    return {"dist": "deterministic", "value": value}


def uniform(low: float, high: float) -> JsonObject:
    """Uniform on [low, high]."""
    return {"dist": "uniform", "low": low, "high": high}


def lognormal(mean: float, cv: float) -> JsonObject:
    """Lognormal with the given mean and coefficient of variation."""
    return {"dist": "lognormal", "mean": mean, "cv": cv}


def bounded_pareto(alpha: float, low: float, high: float) -> JsonObject:
    """Bounded Pareto on [low, high] with shape ``alpha`` (decreasing hazard: heavy tail)."""
    return {"dist": "bounded_pareto", "alpha": alpha, "low": low, "high": high}


def int_range(low: int, high: int) -> JsonObject:
    """Integers low..high inclusive, equally likely (fan-out widths, token counts)."""
    return {"dist": "empirical", "samples": list(range(low, high + 1))}


def to(node: str, p: float = 1.0) -> JsonObject:
    """One transition edge."""
    return {"to": node, "p": p}


def loop_law(loop_to: str, exit_to: str, stop_p: float, max_visits: int) -> list[JsonValue]:
    """``by_visit`` list: after each visit stop (go to ``exit_to``) with ``stop_p``, else go to
    ``loop_to``; the ``max_visits``-th visit always exits, so loops are bounded."""
    per_visit: list[JsonValue] = []
    for _ in range(max_visits - 1):
        per_visit.append([to(exit_to, stop_p), to(loop_to, 1.0 - stop_p)])
    per_visit.append([to(exit_to, 1.0)])
    return per_visit


def llm_unit(
    input_tokens: JsonObject,
    output_tokens: JsonObject,
    *,
    next_: Sequence[JsonObject] | None = None,
    by_visit: list[JsonValue] | None = None,
    width: JsonObject | None = None,
    prompt_growth_tokens: int = 0,
    backend: str = "llm",
) -> JsonObject:
    """An LLM call (or ``width`` parallel calls); service seconds come from the backend's
    ``time_model`` applied to the token draws. ``prompt_growth_tokens`` is added to the input of
    every later visit of the same unit (a chat history or an agent scratchpad)."""
    unit: JsonObject = {
        "kind": "llm",
        "backend": backend,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "fanout": width if width is not None else deterministic(1),
    }
    if prompt_growth_tokens:
        unit["prompt_growth_tokens"] = prompt_growth_tokens
    _set_next(unit, next_, by_visit)
    return unit


def service_unit(
    kind: str,
    backend: str,
    service: JsonObject,
    *,
    next_: Sequence[JsonObject] | None = None,
    by_visit: list[JsonValue] | None = None,
    width: JsonObject | None = None,
) -> JsonObject:
    """A non-LLM unit (tool, retriever, container, dnn) with a service-seconds law."""
    unit: JsonObject = {
        "kind": kind,
        "backend": backend,
        "service": service,
        "fanout": width if width is not None else deterministic(1),
    }
    _set_next(unit, next_, by_visit)
    return unit


def _set_next(
    unit: JsonObject, next_: Sequence[JsonObject] | None, by_visit: list[JsonValue] | None
) -> None:
    if (next_ is None) == (by_visit is None):
        raise ValueError("give exactly one of next_ or by_visit")
    if next_ is not None:
        unit["next"] = list(next_)
    else:
        unit["by_visit"] = by_visit


def app(name: str, weight: float, start: str, units: dict[str, JsonObject], doc: str) -> JsonObject:
    """One app of a mix: a stochastic program over ``units`` entered at ``start``."""
    return {
        "name": name,
        "weight": weight,
        "start": start,
        "units": dict(units),
        "description": doc,
    }


def llm_backend(slots: int) -> JsonObject:
    """One continuous-batching LLM engine: ``slots`` concurrent sequences (the KV-cache limited
    batch), iteration-level preemptive priority, and the artifact's per-token time model."""
    return {
        "servers": slots,
        "preemptive": True,
        "time_model": {
            "prefill_s_per_token": LLM_PREFILL_S_PER_TOKEN,
            "decode_s_per_token": LLM_DECODE_S_PER_TOKEN,
            "overhead_s": 0.0,
        },
    }


def pool_backend(
    servers: int, *, cold_start_s: float = 0.0, keep_alive_s: float | None = None
) -> JsonObject:
    """A non-preemptive pool (search service, container pool, DNN model servers)."""
    backend: JsonObject = {"servers": servers, "preemptive": False}
    if cold_start_s > 0.0:
        backend["cold_start_s"] = cold_start_s
        backend["keep_alive_s"] = keep_alive_s if keep_alive_s is not None else 60.0
    return backend


def trace_arrival(rate_per_s: float, *, bucket_s: float = 30.0) -> JsonObject:
    """Bursty arrivals: a Poisson process whose rate follows :data:`BURSTY_PROFILE` (mean
    ``rate_per_s``), each bucket ``bucket_s`` seconds long, repeating."""
    mean = sum(BURSTY_PROFILE) / len(BURSTY_PROFILE)
    return {
        "process": "trace",
        "rate": rate_per_s,
        "bucket_s": bucket_s,
        "buckets": [round(b / mean, 6) for b in BURSTY_PROFILE],
    }


def poisson_arrival(rate_per_s: float) -> JsonObject:
    """Poisson arrivals at ``rate_per_s`` apps per second."""
    return {"process": "poisson", "rate": rate_per_s}


def deadline_law(
    fraction: float, factors: Sequence[float], base_s: float | None = None
) -> JsonObject:
    """A ``fraction`` of the app's runs get a deadline of ``factor`` x their standalone time
    (or x ``base_s`` seconds, one SLO for every run of the app), the factor drawn uniformly
    from ``factors``."""
    law: JsonObject = {"fraction": fraction, "factors": list(factors)}
    if base_s is not None:
        law["base_s"] = base_s
    return law
