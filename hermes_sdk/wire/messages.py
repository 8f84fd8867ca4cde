"""Every message of the scheduler's HTTP API, defined once as a typed msgspec model.

The server decodes and validates request bodies with these types (one C-level pass, see
:mod:`hermes_sdk.wire.codec`), the clients encode their requests with them, and
:mod:`hermes_sdk.server.openapi` builds the document's ``components/schemas`` from them. The
constraints are the API's validation rules: a name is 1..256 characters without control
characters, a duration is a finite number of seconds in 0..a week, a token count an integer in
0..10,000,000, a timestamp a finite number of unix seconds; booleans are JSON ``true``/``false``
(never numbers) and numbers never booleans. Unknown fields are ignored. The tenant never comes
from a body: it is the API key's.

A ``run_end``'s ``path`` is the graph's own :class:`~hermes_sdk.graph.records.RunPath` (the
export of one completed run, ``path_to_dict``): its constructors check what the types cannot
(reserved node names, fan-out and stage limits) and their errors name the field.
"""

from __future__ import annotations

import sys
from typing import Annotated, Final, Literal

import msgspec

from hermes_sdk.graph.records import MAX_NAME_CHARS, MAX_SERVICE_S, MAX_TOKENS, RunPath, UnitKind

MAX_EVENTS_PER_BATCH: Final = 10_000
CONTROL_FREE: Final = r"^[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*$"
"""No control characters (Unicode categories Cc and Cs)."""

Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="1..256 characters, no control characters",
        extra_json_schema={"pattern": CONTROL_FREE},
    ),
]
"""A name; its control-character rule is checked by the codec (a regex per field would cost
the decoder 7x), the pattern is for the schema."""
Seconds = Annotated[
    float, msgspec.Meta(ge=0.0, le=MAX_SERVICE_S, description="seconds, finite, 0..a week")
]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
UnixSeconds = Annotated[
    float,
    msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max, description="unix seconds"),
]
Count = Annotated[int, msgspec.Meta(ge=0)]


class _Event(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
    """Base of the ``POST /v1/events`` messages, tagged by their ``type`` field."""


class RunStart(_Event, tag="run_start", frozen=True):
    """A run of ``app`` began; ``deadline_s`` is relative to its start."""

    run_id: Name
    app: Name
    deadline_s: Seconds | None = None
    ts: UnixSeconds | None = None


class UnitStart(_Event, tag="unit_start", frozen=True):
    """A unit began; nested units carry ``parent_id`` and do not form stages."""

    run_id: Name
    unit_id: Name
    node: Name
    kind: UnitKind = "custom"
    backend: Name | None = None
    input_tokens: Tokens | None = None
    parent_id: Name | None = None
    ts: UnixSeconds | None = None


class UnitEnd(_Event, tag="unit_end", frozen=True):
    """A unit finished after ``service_s`` seconds of service."""

    run_id: Name
    unit_id: Name
    service_s: Seconds
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    failed: bool = False
    ts: UnixSeconds | None = None


class RunPause(_Event, tag="run_pause", frozen=True):
    """A run stopped to wait for a person or an event; its next ``run_start`` resumes it."""

    run_id: Name
    ts: UnixSeconds | None = None


class RunEnd(_Event, tag="run_end", frozen=True):
    """A run finished; ``path`` (if sent) is what the app's graph learns from (its ``tenant``
    and ``run_id`` are replaced by the server's)."""

    run_id: Name
    failed: bool = False
    path: RunPath | None = None


Event = RunStart | UnitStart | UnitEnd | RunPause | RunEnd


class EventBatch(msgspec.Struct, frozen=True, gc=False):
    """``POST /v1/events``: events applied all or none; ``dropped`` counts events the client
    lost before sending (buffer full)."""

    events: Annotated[list[Event], msgspec.Meta(max_length=MAX_EVENTS_PER_BATCH)]
    dropped: Count = 0


class EventsApplied(msgspec.Struct, frozen=True):
    """Answer to ``POST /v1/events``: events applied, and unit events for unknown runs."""

    accepted: Count
    rejected: Count


class StartRun(msgspec.Struct, frozen=True, omit_defaults=True):
    """``POST /v1/runs``: open a run (a server-made ``run_id`` when none is given)."""

    app: Name
    run_id: Name | None = None
    deadline_s: Seconds | None = None


class RunStarted(msgspec.Struct, frozen=True):
    """Answer to ``POST /v1/runs`` (201)."""

    run_id: Name
    app: Name
    deadline_s: Seconds | None


class EndRun(msgspec.Struct, frozen=True, omit_defaults=True):
    """``POST /v1/runs/{run_id}/end`` (the body is optional)."""

    failed: bool = False
    path: RunPath | None = None


class RunEnded(msgspec.Struct, frozen=True):
    """Answer to ``POST /v1/runs/{run_id}/end``: ``stored`` when a path was learned."""

    run_id: Name
    ended: bool
    stored: bool


class Acquire(msgspec.Struct, frozen=True, omit_defaults=True):
    """``POST /v1/backends/{name}/acquire`` (the body is optional): the run the slot is for and
    how long to wait (capped by the server's ``acquire_timeout_s``). Ranks are the server's."""

    run_id: Name | None = None
    app: Name | None = None
    deadline_s: Seconds | None = None
    timeout_s: Seconds | None = None


class Lease(msgspec.Struct, frozen=True):
    """A granted slot (acquire and renew answers); ``rank_s`` null when granted unranked."""

    lease_id: str
    backend: Name
    rank_s: float | None
    waited_s: Seconds
    lease_s: Seconds


class PrewarmReport(msgspec.Struct, frozen=True):
    """``POST /v1/prewarm/report``: a backend is ready (after ``startup_s``) or released."""

    backend: Name
    event: Literal["ready", "released"]
    startup_s: Annotated[float, msgspec.Meta(ge=0.0)] | None = None


class ErrorDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    """What failed: a stable ``code`` and a message naming the field and why."""

    code: str
    message: str
    retry_after_s: float | None = None
    type: str | None = None
    """OpenAI error type (gateway errors)."""


class Error(msgspec.Struct, frozen=True):
    """Every error answer: ``{"error": {"code", "message", ...}}``."""

    error: ErrorDetail
