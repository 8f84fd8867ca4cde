"""Scheduling hints for one running unit, and their encodings (HTTP headers, engine priority).

A rank is in seconds (1 / Gittins index, or slack for LSTF), so one fixed log-scale bucketing
gives every process, and every engine, the same priority scale without coordination.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

Engine = Literal["vllm", "sglang", "openai", "dynamo", "gie", "litellm"]
"""Serving stacks whose request fields :mod:`hermes_sdk.client.encodings` fills."""

PRIORITY_LEVELS: Final = 64
"""Default number of distinct engine priority values."""
RANK_FLOOR_S: Final = 0.01
"""Ranks at or below this many seconds map to the most urgent level."""
RANK_CEIL_S: Final = 10_000.0
"""Ranks at or above this many seconds map to the least urgent level."""
HIGHER_FIRST_ENGINES: Final = frozenset({"sglang", "dynamo", "gie"})
"""Stacks whose priority runs higher values first (vLLM and LiteLLM run lower first)."""
RETAIN_HEADER: Final = "X-Hermes-Retain-S"
"""Request header: seconds to keep this run's prefix KV cache after the call (0: do not keep);
read by Hermes' gateway and engines (``hermes sim-engine``)."""
QUEUE_WAIT_HEADER: Final = "X-Hermes-Queue-Wait"
"""Response header of the gateway: seconds the request waited for a backend slot."""


def rank_to_level(rank_s: float | None, levels: int = PRIORITY_LEVELS) -> int:
    """Map a rank in seconds to ``0..levels-1`` (0 = most urgent) on a log scale.

    Monotone: a lower rank never gets a higher level. ``None`` (no hint) and NaN map to the
    middle level so unhinted requests neither jump nor starve the queue.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if rank_s is None or math.isnan(rank_s):
        return levels // 2
    if rank_s <= RANK_FLOOR_S:
        return 0
    if rank_s >= RANK_CEIL_S:
        return levels - 1
    span = math.log(RANK_CEIL_S / RANK_FLOOR_S)
    level = int(math.log(rank_s / RANK_FLOOR_S) / span * levels)
    return min(max(level, 0), levels - 1)


def rank_to_priority(
    rank_s: float | None,
    engine: Engine | str,
    *,
    levels: int = PRIORITY_LEVELS,
    higher_first: bool | None = None,
) -> int:
    """The engine-native ``priority`` value for a rank in seconds.

    vLLM and LiteLLM schedule lower values first; SGLang (by default), Dynamo's API and GIE's
    objective priorities higher values first. Pass ``higher_first`` to override an engine's
    convention (e.g. SGLang started with ``--schedule-low-priority-values-first``).
    """
    level = rank_to_level(rank_s, levels)
    if higher_first is None:
        higher_first = engine in HIGHER_FIRST_ENGINES
    return levels - 1 - level if higher_first else level


def identity_headers(app: str, run_id: str, unit: str | None, kind: str | None) -> dict[str, str]:
    """The headers naming the call (app, run, unit and its kind): the first of
    :meth:`Hints.headers`, the part that does not depend on the run's rank."""
    out = {"X-Hermes-App": app, "X-Hermes-Run": run_id}
    if unit is not None:
        out["X-Hermes-Unit"] = unit
    if kind is not None:
        out["X-Hermes-Kind"] = kind
    return out


@dataclass(frozen=True, slots=True)
class Hints:
    """What the scheduler knows about the unit now running; attach it to backend requests.

    ``rank_s`` is the run's rank in seconds (lower runs first); ``remaining_p50_s`` and
    ``remaining_p95_s`` summarise its predicted remaining demand; ``deadline_s`` is the
    run's relative deadline in seconds from its start. ``predicted_output_tokens`` of this call
    and ``remaining_llm_calls`` of the run come from the PDGraph; ``retain_s`` is the KV-cache
    retention hint (seconds to keep this run's prefix after the call; 0: do not keep, see
    :mod:`hermes_sdk.prewarm.retention`); ``tenant`` is the fairness id for stacks that share by
    tenant (GIE).
    """

    app: str
    run_id: str
    unit: str | None = None
    kind: str | None = None
    deadline_s: float | None = None
    rank_s: float | None = None
    remaining_p50_s: float | None = None
    remaining_p95_s: float | None = None
    predicted_output_tokens: int | None = None
    remaining_llm_calls: float | None = None
    retain_s: float | None = None
    tenant: str | None = None

    def headers(self) -> dict[str, str]:
        """The ``X-Hermes-*`` HTTP headers the gateway reads (only fields that are set)."""
        out = identity_headers(self.app, self.run_id, self.unit, self.kind)
        if self.deadline_s is not None:
            out["X-Hermes-Deadline"] = f"{self.deadline_s:.6g}"
        if self.rank_s is not None:
            out["X-Hermes-Rank"] = f"{self.rank_s:.6g}"
        if self.remaining_llm_calls is not None:
            out["X-Hermes-Remaining-Llm-Calls"] = f"{self.remaining_llm_calls:.6g}"
        if self.retain_s is not None:
            out[RETAIN_HEADER] = f"{max(self.retain_s, 0.0):.6g}"
        return out

    def engine_priority(self, engine: Engine | str, *, levels: int = PRIORITY_LEVELS) -> int:
        """This unit's priority in ``engine``'s native convention (see :func:`rank_to_priority`)."""
        return rank_to_priority(self.rank_s, engine, levels=levels)
