"""Frozen copy of the hand-written event validation the server used before issue 26
(``hermes_sdk/server/wire.py`` at 1c54b31, with ``json.loads`` as its decoder), kept only as the
same-run baseline of ``bench_server.py``. It builds today's event types (the msgspec models of
:mod:`hermes_sdk.wire.messages`, constructed without validation like the old dataclasses), so a
server patched with :func:`decode_batch` applies its events as before. Not used by the package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Final, cast

from hermes_sdk.errors import GraphError, InvalidRequest
from hermes_sdk.graph.records import (
    MAX_NAME_CHARS,
    MAX_TOKENS,
    UNIT_KINDS,
    RunPath,
    UnitKind,
    check_name,
    check_seconds,
    path_from_dict,
)
from hermes_sdk.wire.messages import RunEnd, RunPause, RunStart, UnitEnd, UnitStart

MAX_EVENTS_PER_BATCH: Final = 10_000


Event = RunStart | UnitStart | UnitEnd | RunPause | RunEnd


def _field(d: Mapping[str, object], name: str, where: str) -> object:
    if name not in d:
        raise InvalidRequest(f"{where}: missing field {name!r}")
    return d[name]


def name_field(
    d: Mapping[str, object], key: str, where: str, *, optional: bool = False
) -> str | None:
    """A name field (non-empty, <= 256 chars, no control characters); InvalidRequest if bad."""
    value = d.get(key) if optional else _field(d, key, where)
    if value is None and optional:
        return None
    # Fast path: printable ASCII has no control characters, so it is a valid name.
    if (
        type(value) is str
        and 0 < len(value) <= MAX_NAME_CHARS
        and value.isascii()
        and value.isprintable()
    ):
        return value
    try:
        return check_name(value, f"{where}.{key}")
    except GraphError as exc:
        raise InvalidRequest(str(exc)) from None


def seconds_field(
    d: Mapping[str, object], key: str, where: str, *, optional: bool = False
) -> float | None:
    """A duration field: finite, >= 0 seconds; InvalidRequest if bad."""
    value = d.get(key) if optional else _field(d, key, where)
    if value is None and optional:
        return None
    try:
        return check_seconds(value, f"{where}.{key}")
    except GraphError as exc:
        raise InvalidRequest(str(exc)) from None


def _tokens(d: Mapping[str, object], key: str, where: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise InvalidRequest(f"{where}.{key} must be an integer in 0..{MAX_TOKENS}")
    return value


def bool_field(d: Mapping[str, object], key: str, where: str) -> bool:
    """An optional boolean field (default False); InvalidRequest if not a JSON boolean."""
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _ts(d: Mapping[str, object], where: str) -> float | None:
    value = d.get("ts")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequest(f"{where}.ts must be unix seconds, got {value!r}")
    return float(value)


def parse_path(raw: object, where: str, *, tenant: str, run_id: str) -> RunPath:
    """A path dict as sent by a client, with tenant and run id forced to the server's."""
    try:
        parsed = path_from_dict(raw)
    except GraphError as exc:
        raise InvalidRequest(f"{where}.path: {exc}") from None
    return replace(parsed, tenant=tenant, run_id=run_id)


def parse_event(raw: object, i: int, tenant: str) -> Event:
    """Validate one event dict; raises InvalidRequest naming the bad field."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"events[{i}] must be an object")
    d = cast(Mapping[str, object], raw)
    kind = d.get("type")
    w = f"events[{i}]"
    run_id = cast(str, name_field(d, "run_id", w))
    if kind == "run_start":
        return RunStart(
            run_id=run_id,
            app=cast(str, name_field(d, "app", w)),
            deadline_s=seconds_field(d, "deadline_s", w, optional=True),
            ts=_ts(d, w),
        )
    if kind == "unit_start":
        unit_kind = d.get("kind", "custom")
        if unit_kind not in UNIT_KINDS:
            raise InvalidRequest(f"{w}.kind must be one of {sorted(UNIT_KINDS)}")
        return UnitStart(
            run_id=run_id,
            unit_id=cast(str, name_field(d, "unit_id", w)),
            node=cast(str, name_field(d, "node", w)),
            kind=cast(UnitKind, unit_kind),
            backend=name_field(d, "backend", w, optional=True),
            input_tokens=_tokens(d, "input_tokens", w),
            parent_id=name_field(d, "parent_id", w, optional=True),
            ts=_ts(d, w),
        )
    if kind == "unit_end":
        return UnitEnd(
            run_id=run_id,
            unit_id=cast(str, name_field(d, "unit_id", w)),
            service_s=cast(float, seconds_field(d, "service_s", w)),
            input_tokens=_tokens(d, "input_tokens", w),
            output_tokens=_tokens(d, "output_tokens", w),
            failed=bool_field(d, "failed", w),
            ts=_ts(d, w),
        )
    if kind == "run_pause":
        return RunPause(run_id=run_id, ts=_ts(d, w))
    if kind == "run_end":
        raw_path = d.get("path")
        path = None
        if raw_path is not None:
            path = parse_path(raw_path, w, tenant=tenant, run_id=run_id)
        return RunEnd(run_id=run_id, failed=bool_field(d, "failed", w), path=path)
    raise InvalidRequest(
        f"events[{i}].type must be run_start, unit_start, unit_end, run_pause or run_end, "
        f"got {kind!r}"
    )


def parse_batch(body: object, tenant: str) -> tuple[list[Event], int]:
    """Validate a ``{"events": [...], "dropped"?: n}`` body; returns (events, dropped count)."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("body must be a JSON object with an 'events' list")
    d = cast(Mapping[str, object], body)
    raw = d.get("events")
    if not isinstance(raw, list):
        raise InvalidRequest("'events' must be a list")
    if len(raw) > MAX_EVENTS_PER_BATCH:
        raise InvalidRequest(f"at most {MAX_EVENTS_PER_BATCH} events per batch, got {len(raw)}")
    dropped = d.get("dropped", 0)
    if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
        raise InvalidRequest("'dropped' must be a non-negative integer")
    return [parse_event(e, i, tenant) for i, e in enumerate(raw)], dropped


def decode_batch(raw: bytes, tenant: str) -> tuple[list[Event], int]:
    """The old server path: ``json.loads`` then :func:`parse_batch`."""
    import json

    return parse_batch(json.loads(raw), tenant)
