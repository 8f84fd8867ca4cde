"""One wrapped model-client method (``create``): a unit of the current run that carries its hints.

Inside a run each call opens a unit (named by the ``hermes_unit=`` keyword, else the wrap's name
rule, else the ``model``), attaches the unit's hints in the engine's encoding (the same
:func:`~hermes_sdk.client.openai_kwargs.openai_kwargs` the decorators' users call by hand, looked
up by engine name), reads tokens from the response's ``usage`` and ends the unit when the response
(or its stream) is done. An exception from the SDK (``APIStatusError``, a timeout...) ends the unit
failed and propagates unchanged. Outside a run the call goes to the SDK untouched (only the
``hermes_unit`` keyword is removed). Anything that goes wrong on the Hermes side is logged once,
counted and the call is sent as the caller wrote it: the wrapper fails open.

Calls made through ``with_raw_response`` / ``with_streaming_response`` (which the SDKs mark with the
``X-Stainless-Raw-Response`` header) get the run's hints but are not measured: their body belongs to
the caller, and reading it for usage would change what they return.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from hermes_sdk.client.hints import Hints
from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.graph.records import UnitKind, check_name
from hermes_sdk.instrument._context import CURRENT_RUN, CURRENT_UNIT
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.model_streams import AsyncUnitStream, UnitStream
from hermes_sdk.instrument.ranking import compute_hints, lookup
from hermes_sdk.instrument.start_hints import start_answer
from hermes_sdk.instrument.usage import usage_counts, usage_of

log = logging.getLogger("hermes_sdk.instrument")

UNIT_KWARG: Final = "hermes_unit"
"""Per-call keyword naming the unit; removed before the SDK sees the call."""
UNIT_HEADER: Final = "X-Hermes-Unit"
"""A caller's own ``extra_headers`` entry naming the unit (same effect as ``hermes_unit=``)."""
_UNIT_HEADER_LOWER: Final = UNIT_HEADER.lower()
RAW_RESPONSE_HEADER: Final = "X-Stainless-Raw-Response"
"""Header the openai/anthropic SDKs add for ``with_raw_response`` / ``with_streaming_response``."""

NameRule = Callable[[str, Mapping[str, Any]], str]
"""``(endpoint, call kwargs) -> unit name``, e.g. ``lambda endpoint, kw: kw["model"]``."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One SDK method a wrap replaces: its name, its unit kind and whether streams can be asked
    for usage with ``stream_options={"include_usage": True}``."""

    name: str
    kind: UnitKind
    stream_usage: bool


@dataclass(frozen=True, slots=True)
class WrapSettings:
    """What one ``hermes.wrap`` call chose: the engine's hint encoding (by name, so any engine
    :func:`openai_kwargs` knows works), its priority levels, the units' backend and name rule."""

    engine: str
    levels: int
    backend: str | None
    name_rule: NameRule | None
    stream_usage: bool


class WrapState:
    """Mutable per wrapped client: whether its server accepts ``stream_options``."""

    __slots__ = ("settings", "stream_options_ok")

    def __init__(self, settings: WrapSettings) -> None:
        self.settings = settings
        self.stream_options_ok = settings.stream_usage


class _Failures:
    """Hermes-side failures of wrapped calls: counted, each exception type logged once."""

    def __init__(self) -> None:
        self.count = 0
        self._seen: set[type[BaseException]] = set()
        self._lock = threading.Lock()

    def note(self, where: str, exc: Exception) -> None:
        with self._lock:
            self.count += 1
            first = type(exc) not in self._seen
            self._seen.add(type(exc))
        if first:
            log.warning("hermes: wrapped model call sent without hints (%s): %r", where, exc)


FAILURES: Final = _Failures()
"""Process-wide count of wrapped calls Hermes could not instrument (they were sent anyway)."""


class _Prepared(NamedTuple):
    """One call ready to send: the unit (None = not measured) and the kwargs variants (a
    NamedTuple: one is made per call, at a third of a frozen dataclass's cost)."""

    unit: UnitHandle | None
    kwargs: dict[str, Any]
    stream: bool
    injected: bool
    plain: dict[str, Any] | None  # kwargs with hints but without the injected stream_options


def _unit_name(
    explicit: object, endpoint: Endpoint, settings: WrapSettings, kw: dict[str, Any]
) -> str:
    if explicit is not None:
        return check_name(explicit, "hermes_unit")
    if settings.name_rule is not None:
        return check_name(settings.name_rule(endpoint.name, kw), "unit name")
    model = kw.get("model")
    if not isinstance(model, str) or not model:
        return endpoint.name
    return model if endpoint.kind == "llm" else f"{endpoint.name}:{model}"


def with_hints(kwargs: dict[str, Any], hints: Hints, settings: WrapSettings) -> dict[str, Any]:
    """``kwargs`` plus the engine encoding of ``hints`` (the caller's own values win)."""
    return with_encoded(
        kwargs, openai_kwargs(hints, engine=settings.engine, levels=settings.levels)
    )


def with_encoded(
    kwargs: dict[str, Any], encoded: Mapping[str, object], *, fresh: bool = False
) -> dict[str, Any]:
    """``kwargs`` plus ``extra_headers`` / ``extra_body`` from ``encoded`` (the caller's own
    values win); ``fresh``: ``encoded``'s dicts are new and may be sent as they are."""
    out = dict(kwargs)
    for key, value in encoded.items():
        if not value or (type(value) is not dict and not isinstance(value, Mapping)):
            continue
        mine = out.get(key)
        if mine is None:
            out[key] = value if fresh else dict(value)
        elif type(mine) is dict or isinstance(mine, Mapping):
            if key == "extra_headers":  # header names are case-insensitive
                taken = {str(name).lower() for name in mine}
                value = {k: v for k, v in value.items() if str(k).lower() not in taken}
            out[key] = {**value, **mine}
    return out


def _stream_usage(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """``kwargs`` asking for the usage chunk, or None when the caller already decided."""
    options = kwargs.get("stream_options")
    if options is None:
        return {**kwargs, "stream_options": {"include_usage": True}}
    if isinstance(options, Mapping) and "include_usage" not in options:
        return {**kwargs, "stream_options": {**options, "include_usage": True}}
    return None


def prepare(
    run: RunHandle, endpoint: Endpoint, state: WrapState, kwargs: dict[str, Any]
) -> _Prepared:
    """Open the call's unit and build what to send. Never raises (fails open)."""
    explicit = kwargs.pop(UNIT_KWARG, None)
    headers = kwargs.get("extra_headers")
    settings = state.settings
    unit: UnitHandle | None = None
    raw = headers is not None and isinstance(headers, Mapping) and RAW_RESPONSE_HEADER in headers
    try:
        if explicit is None and headers and isinstance(headers, Mapping):
            # the type-checked way to name the unit: the caller's own X-Hermes-Unit header
            lower = _UNIT_HEADER_LOWER
            explicit = next((v for k, v in headers.items() if str(k).lower() == lower), None)
        if raw:
            hinted = with_hints(kwargs, compute_hints(run, CURRENT_UNIT.get()), settings)
        else:
            node = _unit_name(explicit, endpoint, settings, kwargs)
            unit = run.open_unit(node, endpoint.kind, settings.backend, CURRENT_UNIT.get())
            hinted = with_encoded(kwargs, start_kwargs(run, unit, settings), fresh=True)
    except Exception as exc:
        FAILURES.note(endpoint.name, exc)
        if unit is None and not raw:
            try:  # still learn the call when only its name or its hints failed
                unit = run.open_unit(
                    endpoint.name, endpoint.kind, settings.backend, CURRENT_UNIT.get()
                )
            except Exception:
                unit = None
        return _Prepared(unit, kwargs, kwargs.get("stream") is True, False, None)
    stream = kwargs.get("stream") is True
    if unit is None or not stream or not endpoint.stream_usage or not state.stream_options_ok:
        return _Prepared(unit, hinted, stream, False, None)
    asked = _stream_usage(hinted)
    if asked is None:
        return _Prepared(unit, hinted, stream, False, None)
    return _Prepared(unit, asked, stream, True, hinted)


def start_kwargs(run: RunHandle, unit: UnitHandle, settings: WrapSettings) -> Mapping[str, object]:
    """The encoding of ``unit``'s hints at its start (see :mod:`~hermes_sdk.instrument.
    start_hints`), in new dicts; ``unit.hints()`` returns the same hints afterwards."""
    answer = start_answer(run, unit)
    if answer is None:
        found = lookup(run, unit, unit.start_ns)
        unit._sent = (found,)
        return openai_kwargs(unit.hints(), engine=settings.engine, levels=settings.levels)
    unit._sent = (answer.found,)
    return answer.request_kwargs(run, unit, settings.engine, settings.levels)


def rejects_stream_options(exc: BaseException) -> bool:
    """A 400 from a server that does not know ``stream_options`` (checked before any token)."""
    return getattr(exc, "status_code", None) == 400 and "stream_options" in str(exc)


def _finish(unit: UnitHandle, result: Any, prepared: _Prepared, is_async: bool) -> Any:
    if prepared.stream:
        cls = AsyncUnitStream if is_async else UnitStream
        return cls(result, unit, prepared.injected)
    try:  # the SDKs' responses keep it in ``.usage`` (no ``usage_metadata`` probe needed)
        block = getattr(result, "usage", None)
    except Exception:
        block = None
    usage = usage_counts(block) if block is not None else usage_of(result)
    if usage is not None:  # counts already checked as ``record`` would (last value wins)
        if usage[0] is not None:
            unit.input_tokens = usage[0]
        if usage[1] is not None:
            unit.output_tokens = usage[1]
    unit.end(False)
    return result


def sync_call(
    original: Callable[..., Any], endpoint: Endpoint, state: WrapState
) -> Callable[..., Any]:
    """The measured, hinted replacement of a sync SDK method."""

    def create(*args: Any, **kwargs: Any) -> Any:
        run = CURRENT_RUN.get()
        if run is None:
            kwargs.pop(UNIT_KWARG, None)
            return original(*args, **kwargs)
        prepared = prepare(run, endpoint, state, kwargs)
        unit = prepared.unit
        if unit is None:
            return original(*args, **prepared.kwargs)
        token = CURRENT_UNIT.set(unit)
        try:
            try:
                result = original(*args, **prepared.kwargs)
            except Exception as exc:
                if prepared.plain is None or not rejects_stream_options(exc):
                    raise
                state.stream_options_ok = False
                prepared = _Prepared(unit, prepared.plain, True, False, None)
                result = original(*args, **prepared.kwargs)
        except BaseException:
            unit.end(True)
            raise
        finally:
            CURRENT_UNIT.reset(token)
        return _finish(unit, result, prepared, False)

    return create


def async_call(
    original: Callable[..., Awaitable[Any]], endpoint: Endpoint, state: WrapState
) -> Callable[..., Awaitable[Any]]:
    """The measured, hinted replacement of an async SDK method."""

    async def create(*args: Any, **kwargs: Any) -> Any:
        run = CURRENT_RUN.get()
        if run is None:
            kwargs.pop(UNIT_KWARG, None)
            return await original(*args, **kwargs)
        prepared = prepare(run, endpoint, state, kwargs)
        unit = prepared.unit
        if unit is None:
            return await original(*args, **prepared.kwargs)
        token = CURRENT_UNIT.set(unit)
        try:
            try:
                result = await original(*args, **prepared.kwargs)
            except Exception as exc:
                if prepared.plain is None or not rejects_stream_options(exc):
                    raise
                state.stream_options_ok = False
                prepared = _Prepared(unit, prepared.plain, True, False, None)
                result = await original(*args, **prepared.kwargs)
        except BaseException:
            unit.end(True)
            raise
        finally:
            CURRENT_UNIT.reset(token)
        return _finish(unit, result, prepared, True)

    return create
