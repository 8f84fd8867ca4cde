"""The scheduler's HTTP messages, defined once: typed models (:mod:`.messages`) and their codec
(:mod:`.codec`), shared by the server (decode, validate), the clients (encode) and the OpenAPI
document (schemas)."""

from hermes_sdk.wire.codec import convert, decode, encode, json_schemas
from hermes_sdk.wire.messages import (
    Acquire,
    EndRun,
    Error,
    Event,
    EventBatch,
    EventsApplied,
    Lease,
    PrewarmReport,
    RunEnd,
    RunPause,
    RunStart,
    StartRun,
    UnitEnd,
    UnitStart,
)

__all__ = [
    "Acquire",
    "EndRun",
    "Error",
    "Event",
    "EventBatch",
    "EventsApplied",
    "Lease",
    "PrewarmReport",
    "RunEnd",
    "RunPause",
    "RunStart",
    "StartRun",
    "UnitEnd",
    "UnitStart",
    "convert",
    "decode",
    "encode",
    "json_schemas",
]
