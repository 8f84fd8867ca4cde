"""The server's side of the wire: request bodies decoded into the models of :mod:`hermes_sdk.wire`.

A batch is validated completely before anything is applied, so a malformed batch changes
nothing and answers 400 naming the failing field. The tenant never comes from the body: it is
the API key's, and a ``run_end`` path's tenant and run id are replaced by the server's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import msgspec
from aiohttp import web

from hermes_sdk.errors import InvalidRequest
from hermes_sdk.graph.records import RunPath
from hermes_sdk.wire.codec import convert, decode
from hermes_sdk.wire.messages import (
    MAX_EVENTS_PER_BATCH,
    Event,
    EventBatch,
    RunEnd,
    RunPause,
    RunStart,
    UnitEnd,
    UnitStart,
)

__all__ = [
    "MAX_EVENTS_PER_BATCH", "Event", "RunEnd", "RunPause", "RunStart", "UnitEnd", "UnitStart",
    "decode_batch", "own_path", "parse_batch", "parse_event", "read_message",
]  # fmt: skip

M = TypeVar("M")


async def read_message(request: web.Request, model: type[M], *, allow_empty: bool = False) -> M:
    """The request body as a ``model`` (``model()`` for an absent or blank body if
    ``allow_empty``); malformed JSON is 400 ``invalid_json``, a bad field 400
    ``invalid_request``, a body over the size limit 413 (see :mod:`.middlewares`)."""
    if allow_empty and not request.can_read_body:
        return model()
    return decode(await request.read(), model, allow_empty=allow_empty)


def own_path(path: RunPath, *, tenant: str, run_id: str) -> RunPath:
    """A client's path with tenant and run id forced to the server's."""
    return replace(path, tenant=tenant, run_id=run_id)


def _owned(events: list[Event], tenant: str) -> list[Event]:
    for i, ev in enumerate(events):
        if type(ev) is RunEnd and ev.path is not None:
            path = own_path(ev.path, tenant=tenant, run_id=ev.run_id)
            events[i] = msgspec.structs.replace(ev, path=path)
    return events


def decode_batch(raw: bytes, tenant: str) -> tuple[list[Event], int]:
    """A ``POST /v1/events`` body: (events, dropped count), all validated."""
    batch = decode(raw, EventBatch)
    return _owned(batch.events, tenant), batch.dropped


def parse_batch(body: object, tenant: str) -> tuple[list[Event], int]:
    """:func:`decode_batch` for an already parsed ``{"events": [...], "dropped"?: n}``."""
    batch = convert(body, EventBatch)
    return _owned(batch.events, tenant), batch.dropped


def parse_event(raw: object, i: int, tenant: str) -> Event:
    """One event dict (``events[i]`` of a batch), validated."""
    try:
        return parse_batch({"events": [raw]}, tenant)[0][0]
    except InvalidRequest as exc:
        raise InvalidRequest(str(exc).replace("events[0]", f"events[{i}]", 1)) from None
