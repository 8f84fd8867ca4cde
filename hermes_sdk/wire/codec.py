"""Decode, validate and encode the wire messages of :mod:`hermes_sdk.wire.messages`.

Decoding is one msgspec pass over the bytes (UTF-8 only, as RFC 8259 asks): malformed JSON,
non-UTF-8 bytes and nesting too deep for the decoder raise ``json.JSONDecodeError`` (the server
answers 400 ``invalid_json``); a body of the wrong shape raises
:class:`~hermes_sdk.errors.InvalidRequest` (400 ``invalid_request``) whose message starts with
the failing field, e.g. ``events[3].service_s: Expected `float` >= 0.0``.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar, cast

import msgspec

from hermes_sdk.errors import InvalidRequest
from hermes_sdk.wire.messages import Event, EventBatch

T = TypeVar("T")
_ENCODER: msgspec.json.Encoder = msgspec.json.Encoder()
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""A control character (Unicode Cc or Cs): never allowed in a string field of a message."""


_DECODERS: dict[object, msgspec.json.Decoder[Any]] = {}


def _decoder(model: object) -> msgspec.json.Decoder[Any]:
    decoder = _DECODERS.get(model)
    if decoder is None:
        decoder = _DECODERS[model] = msgspec.json.Decoder(model)
    return decoder


def field_error(exc: msgspec.ValidationError) -> InvalidRequest:
    """An InvalidRequest saying ``<field>: <why>`` (``body`` for the whole body)."""
    why, _, at = str(exc).partition(" - at `$")
    where = "body" + at.rstrip("`") if at.startswith("[") or not at else at.rstrip("`")[1:]
    return InvalidRequest(f"{where}: {why}")


def check_strings(message: object, where: str = "") -> None:
    """InvalidRequest if a string field of ``message`` (or of a message in it) holds a control
    character; the RunPath in a ``run_end`` checks its own names."""
    for name in getattr(message, "__struct_fields__", ()):
        value = getattr(message, name)
        if isinstance(value, str):
            if _CONTROL.search(value):
                raise InvalidRequest(f"{where}{name}: contains control characters: {value!r}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                check_strings(item, f"{where}{name}[{i}].")
        elif isinstance(value, msgspec.Struct):
            check_strings(value, f"{where}{name}.")


def _may_hold_control(raw: bytes | str) -> bool:
    """False only if no decoded string can hold a control character: JSON carries one only as
    an escape (a backslash) or raw as DEL (0x7f) or U+0080..U+009F (UTF-8 lead byte 0xc2)."""
    if isinstance(raw, str):
        return True
    return b"\\" in raw or b"\x7f" in raw or b"\xc2" in raw


def decode(raw: bytes | str, model: type[T], *, allow_empty: bool = False) -> T:
    """The body as a ``model``; an empty body is ``model()`` when ``allow_empty``."""
    if allow_empty and not raw.strip():
        return model()
    try:
        message: T = _decoder(model).decode(raw)
        if _may_hold_control(raw):
            check_strings(message)
        return message
    except msgspec.ValidationError as exc:
        raise field_error(exc) from None
    except msgspec.DecodeError as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError("nesting too deep", "", 0) from None


def convert(obj: object, model: type[T]) -> T:
    """Python objects (e.g. parsed JSON) as a ``model``, validated like :func:`decode`."""
    try:
        message = msgspec.convert(obj, model)
    except msgspec.ValidationError as exc:
        raise field_error(exc) from None
    except UnicodeEncodeError:  # a str with a lone surrogate (JSON text cannot carry one)
        raise InvalidRequest("body: a string holds a lone surrogate (control character)") from None
    check_strings(message)
    return message


def encode(message: object) -> bytes:
    """JSON bytes of a message (fields at their default omitted where the model says so)."""
    return _ENCODER.encode(message)


def event_batch(events: list[dict[str, object]], dropped: int = 0) -> EventBatch:
    """A batch around the recorder's event dicts, for :func:`encode` (as fast as encoding the
    dicts: they are not converted; the server validates them and refuses the batch if one is
    malformed)."""
    return EventBatch(events=cast(list[Event], events), dropped=dropped)


def json_schemas(
    models: tuple[Any, ...], ref_template: str = "#/components/schemas/{name}"
) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """(a ``$ref`` schema per model, the named schemas they refer to), for OpenAPI 3.1."""
    return msgspec.json.schema_components(models, ref_template=ref_template)
