"""Value objects that describe what an app run did: calls, stages and completed paths.

These are the contract between instrumentation, the store, the scheduler protocol and the PDGraph.
All times are seconds (float), token counts are ints. Every constructor validates its input and
raises :class:`~hermes_sdk.errors.GraphError` (a ``ValueError``) with a message naming the field.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args

from hermes_sdk.errors import GraphError

UnitKind = Literal["llm", "tool", "retriever", "dnn", "container", "custom"]
UNIT_KINDS: Final[frozenset[str]] = frozenset(get_args(UnitKind))

START: Final = "START"
"""Virtual entry node of every app graph."""
END: Final = "END"
"""Virtual exit node of every app graph."""

MAX_NAME_CHARS: Final = 256
MAX_TOKENS: Final = 10_000_000
"""Largest token count accepted for one call (beyond any real context window)."""
MAX_SERVICE_S: Final = 7 * 24 * 3600.0
"""Largest duration accepted for one call: a week."""
MAX_WIDTH: Final = 10_000
"""Largest fan-out width accepted for one stage."""
MAX_STAGES: Final = 100_000
"""Largest number of stages accepted in one path."""


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a usable unit/app/backend name, else raise GraphError."""
    if not isinstance(value, str) or not value:
        raise GraphError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_CHARS:
        raise GraphError(f"{what} is longer than {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise GraphError(f"{what} contains control characters: {value!r}")
    return value


def check_seconds(value: object, what: str) -> float:
    """Return ``value`` as float seconds if finite, >= 0 and <= MAX_SERVICE_S, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GraphError(f"{what} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0.0:
        raise GraphError(f"{what} must be finite and >= 0, got {value!r}")
    if seconds > MAX_SERVICE_S:
        raise GraphError(f"{what} = {seconds} s exceeds the limit of {MAX_SERVICE_S} s")
    return seconds


def _check_tokens(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphError(f"{what} must be an integer token count, got {value!r}")
    if not 0 <= value <= MAX_TOKENS:
        raise GraphError(f"{what} must be within 0..{MAX_TOKENS}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Call:
    """One invocation of a unit and the demand it put on its backend."""

    service_s: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    cold_start_s: float | None = None
    failed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "service_s", check_seconds(self.service_s, "service_s"))
        _check_tokens(self.input_tokens, "input_tokens")
        _check_tokens(self.output_tokens, "output_tokens")
        if self.cold_start_s is not None:
            object.__setattr__(
                self, "cold_start_s", check_seconds(self.cold_start_s, "cold_start_s")
            )


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a path: a unit called once, or ``width`` times in parallel (fan-out).

    ``service_s`` (the demand on backends) is the sum over calls; ``latency_s`` (what the app
    waited) is the stage's wall time, by default the longest call.
    """

    node: str
    calls: tuple[Call, ...]
    kind: UnitKind = "custom"
    backend: str | None = None
    latency_s: float | None = None

    def __post_init__(self) -> None:
        check_name(self.node, "stage node")
        if self.node in (START, END):
            raise GraphError(f"stage node may not be the reserved name {self.node!r}")
        if self.kind not in UNIT_KINDS:
            raise GraphError(f"kind must be one of {sorted(UNIT_KINDS)}, got {self.kind!r}")
        if self.backend is not None:
            check_name(self.backend, "backend")
        if not isinstance(self.calls, tuple) or not self.calls:
            raise GraphError(f"stage {self.node!r} needs at least one call")
        if len(self.calls) > MAX_WIDTH:
            raise GraphError(f"stage {self.node!r} fan-out {len(self.calls)} exceeds {MAX_WIDTH}")
        if not all(isinstance(c, Call) for c in self.calls):
            raise GraphError(f"stage {self.node!r} calls must be Call objects")
        if self.latency_s is None:
            object.__setattr__(self, "latency_s", max(c.service_s for c in self.calls))
        else:
            object.__setattr__(self, "latency_s", check_seconds(self.latency_s, "latency_s"))

    @property
    def width(self) -> int:
        """Number of parallel calls in this stage."""
        return len(self.calls)

    @property
    def service_s(self) -> float:
        """Total backend demand of the stage in seconds (sum over parallel calls)."""
        calls = self.calls
        if len(calls) == 1:  # the common case, on every learned stage: fsum([x]) == x + 0.0
            return calls[0].service_s + 0.0
        return math.fsum(c.service_s for c in calls)


@dataclass(frozen=True, slots=True)
class RunPath:
    """A completed run of an app: the ordered stages it went through, from START to END.

    ``paused_s`` is the wall time the run spent paused (a LangGraph interrupt waiting for a
    person or an event), never counted as service or latency. ``abandoned`` marks a paused run
    that was not resumed within the pause horizon; it is also ``failed`` (learned only up to
    where it got).
    """

    app: str
    stages: tuple[Stage, ...]
    run_id: str = ""
    tenant: str = "default"
    started_at: float = 0.0
    deadline_s: float | None = None
    failed: bool = False
    paused_s: float = 0.0
    abandoned: bool = False

    def __post_init__(self) -> None:
        check_name(self.app, "app")
        check_name(self.tenant, "tenant")
        if not isinstance(self.stages, tuple):
            raise GraphError("stages must be a tuple of Stage")
        if len(self.stages) > MAX_STAGES:
            raise GraphError(f"path has {len(self.stages)} stages, more than {MAX_STAGES}")
        if not all(isinstance(s, Stage) for s in self.stages):
            raise GraphError("stages must be Stage objects")
        if self.deadline_s is not None:
            check_seconds(self.deadline_s, "deadline_s")
        if isinstance(self.started_at, bool) or not isinstance(self.started_at, (int, float)):
            raise GraphError(f"started_at must be a unix time, got {self.started_at!r}")
        if not math.isfinite(self.started_at):
            raise GraphError("started_at must be finite")
        object.__setattr__(self, "paused_s", check_seconds(self.paused_s, "paused_s"))
        if self.abandoned and not self.failed:
            raise GraphError("an abandoned run must also be failed")

    @property
    def service_s(self) -> float:
        """Total service demand of the run in seconds."""
        return math.fsum(s.service_s for s in self.stages)


@dataclass(frozen=True, slots=True)
class RunState:
    """Where a running app is now, the input of remaining-demand prediction.

    ``node`` is the stage most recently entered (START before the first). ``visits`` counts how
    many times each node has been entered, including ``node``. While ``running`` is true the
    stage is still executing: each of its parallel calls has been served ``elapsed_s`` seconds
    (the stage's service so far divided by its width; the wall time of the stage when its calls
    run together), and its prompt size (``input_tokens``) and fan-out ``width`` may be known.
    """

    node: str = START
    visits: tuple[tuple[str, int], ...] = field(default=())
    running: bool = False
    elapsed_s: float = 0.0
    input_tokens: int | None = None
    width: int | None = None

    def visit_count(self, node: str) -> int:
        """How many times ``node`` has been entered so far."""
        for name, count in self.visits:
            if name == node:
                return count
        return 0

    @staticmethod
    def after(stages: tuple[Stage, ...] | list[Stage]) -> RunState:
        """The state of a run that has completed ``stages`` and is between stages."""
        counts: dict[str, int] = {}
        for s in stages:
            counts[s.node] = counts.get(s.node, 0) + 1
        node = stages[-1].node if stages else START
        return RunState(node=node, visits=tuple(sorted(counts.items())))


# --- JSON-able dict form, shared by the store and the scheduler protocol -------------------------


def call_to_dict(call: Call) -> dict[str, Any]:
    """Compact dict form of a call (omits empty fields)."""
    out: dict[str, Any] = {"service_s": call.service_s}
    if call.input_tokens is not None:
        out["input_tokens"] = call.input_tokens
    if call.output_tokens is not None:
        out["output_tokens"] = call.output_tokens
    if call.cold_start_s is not None:
        out["cold_start_s"] = call.cold_start_s
    if call.failed:
        out["failed"] = True
    return out


def path_to_dict(path: RunPath) -> dict[str, Any]:
    """Dict form of a path, inverse of :func:`path_from_dict` (``paused_s`` and ``abandoned``
    only when set, so paths that never paused keep their old form)."""
    out: dict[str, Any] = {
        "app": path.app,
        "run_id": path.run_id,
        "tenant": path.tenant,
        "started_at": path.started_at,
        "deadline_s": path.deadline_s,
        "failed": path.failed,
        "stages": [
            {
                "node": s.node,
                "kind": s.kind,
                "backend": s.backend,
                "latency_s": s.latency_s,
                "calls": [call_to_dict(c) for c in s.calls],
            }
            for s in path.stages
        ],
    }
    if path.paused_s:
        out["paused_s"] = path.paused_s
    if path.abandoned:
        out["abandoned"] = True
    return out


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise GraphError(f"{what} must be an object, got {type(value).__name__}")
    return cast(Mapping[str, Any], value)


def call_from_dict(data: object) -> Call:
    """Parse a call dict; raises GraphError naming the bad field."""
    d = _mapping(data, "call")
    return Call(
        service_s=d.get("service_s"),  # type: ignore[arg-type]  # validated in __post_init__
        input_tokens=d.get("input_tokens"),
        output_tokens=d.get("output_tokens"),
        cold_start_s=d.get("cold_start_s"),
        failed=bool(d.get("failed", False)),
    )


def path_from_dict(data: object) -> RunPath:
    """Parse a path dict produced by :func:`path_to_dict` (or sent by a client)."""
    d = _mapping(data, "path")
    raw_stages = d.get("stages")
    if not isinstance(raw_stages, list):
        raise GraphError("path.stages must be a list")
    if len(raw_stages) > MAX_STAGES:
        raise GraphError(f"path has {len(raw_stages)} stages, more than {MAX_STAGES}")
    stages = []
    for i, raw in enumerate(raw_stages):
        s = _mapping(raw, f"stages[{i}]")
        calls = s.get("calls")
        if not isinstance(calls, list):
            raise GraphError(f"stages[{i}].calls must be a list")
        if len(calls) > MAX_WIDTH:
            raise GraphError(f"stages[{i}] fan-out {len(calls)} exceeds {MAX_WIDTH}")
        stages.append(
            Stage(
                node=s.get("node"),  # type: ignore[arg-type]
                kind=s.get("kind", "custom"),
                backend=s.get("backend"),
                latency_s=s.get("latency_s"),
                calls=tuple(call_from_dict(c) for c in calls),
            )
        )
    return RunPath(
        app=d.get("app"),  # type: ignore[arg-type]
        stages=tuple(stages),
        run_id=str(d.get("run_id", "")),
        tenant=d.get("tenant", "default"),
        started_at=d.get("started_at", 0.0),
        deadline_s=d.get("deadline_s"),
        failed=bool(d.get("failed", False)),
        paused_s=d.get("paused_s", 0.0),
        abandoned=bool(d.get("abandoned", False)),
    )
