"""The event batch as pydantic v2 models: the candidate issue 26 measured against msgspec.

Same rules as :mod:`hermes_sdk.wire.messages` (names 1..256 characters, durations 0..a week,
token counts 0..10M, strict booleans and numbers, a tagged union on ``type``, at most 10,000
events); the path is left a plain object here and built by the same RunPath constructors.
Only ``bench_server.py`` uses it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, TypeAdapter

Name = Annotated[str, Field(min_length=1, max_length=256)]
"""No control-character pattern: like the msgspec models, names would be checked by the codec's
byte-level guard only in bodies that can hold a control character, so both candidates are timed
without a per-field regex."""
Seconds = Annotated[StrictFloat | StrictInt, Field(ge=0, le=7 * 24 * 3600.0, allow_inf_nan=False)]
Tokens = Annotated[StrictInt, Field(ge=0, le=10_000_000)]
Ts = Annotated[StrictFloat | StrictInt, Field(allow_inf_nan=False)]
UnitKind = Literal["llm", "tool", "retriever", "dnn", "container", "custom"]


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True)


class RunStart(_Base):
    type: Literal["run_start"]
    run_id: Name
    app: Name
    deadline_s: Seconds | None = None
    ts: Ts | None = None


class UnitStart(_Base):
    type: Literal["unit_start"]
    run_id: Name
    unit_id: Name
    node: Name
    kind: UnitKind = "custom"
    backend: Name | None = None
    input_tokens: Tokens | None = None
    parent_id: Name | None = None
    ts: Ts | None = None


class UnitEnd(_Base):
    type: Literal["unit_end"]
    run_id: Name
    unit_id: Name
    service_s: Seconds
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    failed: StrictBool = False
    ts: Ts | None = None


class RunPause(_Base):
    type: Literal["run_pause"]
    run_id: Name
    ts: Ts | None = None


class RunEnd(_Base):
    type: Literal["run_end"]
    run_id: Name
    failed: StrictBool = False
    path: dict[str, Any] | None = None


Event = Annotated[RunStart | UnitStart | UnitEnd | RunPause | RunEnd, Field(discriminator="type")]


class EventBatch(_Base):
    events: Annotated[list[Event], Field(max_length=10_000)]
    dropped: Annotated[StrictInt, Field(ge=0)] = 0


BATCH = TypeAdapter(EventBatch)
