"""Streams returned by a wrapped model client: the caller's stream, measured as one unit.

A proxy, not a subclass, so no client library is imported: it forwards iteration, ``with``,
``close()`` and every other attribute (``response``, ``until_done``...) to the SDK's stream. The
unit ends when the stream is exhausted (success), raises (failed; the exception propagates
unchanged) or is closed early (not a failure, like a closed generator). Tokens are read from the
chunks that carry usage: OpenAI's last chunk with ``stream_options.include_usage``, the Responses
API's ``response.completed`` event, Anthropic's ``message_start`` / ``message_delta`` events.
When the wrapper itself asked for the usage chunk, that chunk (no choices, only usage) is
consumed here so the caller sees exactly the chunks it would have seen unwrapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from hermes_sdk.instrument.handles import UnitHandle
from hermes_sdk.instrument.usage import usage_counts

_NESTED = ("response", "message")
"""Attributes of stream events that hold a whole response with its usage."""


_MISSING = object()


def _usage_block(item: object) -> object | None:
    return (
        item.get("usage", _MISSING)
        if isinstance(item, Mapping)
        else getattr(item, "usage", _MISSING)
    )


def chunk_usage(item: object) -> tuple[int | None, int | None] | None:
    """``(input_tokens, output_tokens)`` carried by one streamed chunk or event, if any.

    Never raises."""
    try:
        block = _usage_block(item)
        if block is not _MISSING:  # chat/completions chunks and message_delta carry it here
            return None if block is None else usage_counts(block)
        for attr in _NESTED:
            inner = item.get(attr) if isinstance(item, Mapping) else getattr(item, attr, None)
            if inner is not None and not isinstance(inner, (str, bytes)):
                block = _usage_block(inner)
                if block is not _MISSING and block is not None:
                    return usage_counts(block)
    except Exception:
        return None
    return None


def _is_usage_only(item: object) -> bool:
    """An OpenAI ``include_usage`` chunk: no choices, usage set."""
    try:
        return getattr(item, "choices", None) == [] and getattr(item, "usage", None) is not None
    except Exception:
        return False


class _Measured:
    """What both proxies share: the unit, the usage bookkeeping and attribute forwarding."""

    __slots__ = ("_drop_usage_chunk", "_stream", "_unit")

    def __init__(self, stream: Any, unit: UnitHandle, drop_usage_chunk: bool) -> None:
        self._stream = stream
        self._unit = unit
        self._drop_usage_chunk = drop_usage_chunk

    def _keep(self, item: object) -> bool:
        """Record the usage ``item`` carries; whether the caller should see it."""
        usage = chunk_usage(item)
        if usage is None:
            return True
        unit = self._unit
        if usage[0] is not None:
            unit.input_tokens = usage[0]
        if usage[1] is not None:
            unit.output_tokens = usage[1]
        return not (self._drop_usage_chunk and _is_usage_only(item))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"hermes-measured {self._stream!r}"


class UnitStream(_Measured):
    """A sync SDK stream (``openai.Stream``, ``anthropic.Stream``) measured as a unit."""

    __slots__ = ()

    def __iter__(self) -> UnitStream:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                item = next(self._stream)
            except StopIteration:
                self._unit.end(False)
                raise
            except BaseException:
                self._unit.end(True)
                raise
            if self._keep(item):
                return item

    def close(self) -> None:
        """Close the SDK stream (its connection); the unit ends, not failed."""
        try:
            self._stream.close()
        finally:
            self._unit.end(False)

    def __enter__(self) -> UnitStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._stream.close()
        finally:
            self._unit.end(exc_type is not None and exc_type is not GeneratorExit)


class AsyncUnitStream(_Measured):
    """An async SDK stream (``openai.AsyncStream``, ``anthropic.AsyncStream``) as a unit."""

    __slots__ = ()

    def __aiter__(self) -> AsyncUnitStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self._stream.__anext__()
            except StopAsyncIteration:
                self._unit.end(False)
                raise
            except BaseException:
                self._unit.end(True)
                raise
            if self._keep(item):
                return item

    async def close(self) -> None:
        """Close the SDK stream (its connection); the unit ends, not failed."""
        try:
            await self._stream.close()
        finally:
            self._unit.end(False)

    async def __aenter__(self) -> AsyncUnitStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._stream.close()
        finally:
            self._unit.end(exc_type is not None and exc_type is not GeneratorExit)
