"""Unit decorators: ``@hermes.llm``, ``@hermes.tool``, ``@hermes.retriever``, ``@hermes.unit``.

One factory inspects the callable once, at decoration time (sync function, coroutine function,
generator, async generator; ``classmethod``/``staticmethod`` objects in either stacking order) and
returns the matching wrapper. Per call, outside any run, a wrapper costs one context-variable
read; inside a run, a unit handle, a ``perf_counter_ns`` at each end and a context-variable
set/reset (reset in ``finally``-equivalent paths, so cancellation leaves no dangling context).
Exceptions are recorded as a failed unit and re-raised unchanged. Generators are measured from
their first step until exhausted, closed or failed; a closed generator is not a failure.

Units called outside any ``hermes.run`` are not recorded: the function runs untouched (see
docs/decisions.md, "Units outside a run are ignored").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from time import perf_counter_ns
from typing import Any, TypeVar, cast, overload

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import UNIT_KINDS, UnitKind, check_name
from hermes_sdk.instrument._context import CURRENT_RUN, CURRENT_UNIT
from hermes_sdk.instrument.env_settings import env_disabled
from hermes_sdk.instrument.handles import UnitHandle
from hermes_sdk.instrument.usage import usage_of

_F = TypeVar("_F", bound="Callable[..., Any] | classmethod[Any, Any, Any] | staticmethod[Any, Any]")


def unit_name(fn: object) -> str:
    """Default node name of a callable: its qualified name without ``<locals>`` prefixes."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(qual, str):
        qual = type(fn).__qualname__
    return qual.rsplit("<locals>.", 1)[-1]


def _capture(unit: UnitHandle, value: object) -> None:
    if unit.input_tokens is not None and unit.output_tokens is not None:
        return
    usage = usage_of(value)
    if usage is None:
        return
    if unit.input_tokens is None:
        unit.input_tokens = usage[0]
    if unit.output_tokens is None:
        unit.output_tokens = usage[1]


def _wrap_sync(
    fn: Callable[..., Any], node: str, kind: UnitKind, backend: str | None, capture: bool
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = CURRENT_RUN.get()
        if run is None:
            return fn(*args, **kwargs)
        unit = run.open_unit(node, kind, backend, CURRENT_UNIT.get())
        token = CURRENT_UNIT.set(unit)
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            CURRENT_UNIT.reset(token)
            unit.end(True)
            raise
        CURRENT_UNIT.reset(token)
        if capture:
            _capture(unit, result)
        unit.end(False)
        return result

    return wrapper


def _wrap_coroutine(
    fn: Callable[..., Any], node: str, kind: UnitKind, backend: str | None, capture: bool
) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = CURRENT_RUN.get()
        if run is None:
            return await fn(*args, **kwargs)
        unit = run.open_unit(node, kind, backend, CURRENT_UNIT.get())
        token = CURRENT_UNIT.set(unit)
        try:
            result = await fn(*args, **kwargs)
        except BaseException:
            CURRENT_UNIT.reset(token)
            unit.end(True)
            raise
        CURRENT_UNIT.reset(token)
        if capture:
            _capture(unit, result)
        unit.end(False)
        return result

    return wrapper


def _wrap_generator(
    fn: Callable[..., Any], node: str, kind: UnitKind, backend: str | None, capture: bool
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        run = CURRENT_RUN.get()
        if run is None:
            return (yield from fn(*args, **kwargs))
        unit = run.open_unit(node, kind, backend, CURRENT_UNIT.get())
        failed = True
        try:
            gen = fn(*args, **kwargs)  # runs no user code yet: no context needed
            sent: Any = None
            pending: BaseException | None = None
            while True:
                # The unit is current only while the inner generator runs, never while the
                # consumer holds an item, so the consumer's own units are not nested in it.
                token = CURRENT_UNIT.set(unit)
                try:
                    if pending is None:
                        item = gen.send(sent)
                    else:
                        exc, pending = pending, None
                        item = gen.throw(exc)
                except StopIteration as stop:
                    failed = False
                    return stop.value
                finally:
                    CURRENT_UNIT.reset(token)
                if capture:
                    _capture_stream(unit, item)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = CURRENT_UNIT.set(unit)
                    try:
                        gen.close()
                    finally:
                        CURRENT_UNIT.reset(token)
                    failed = False
                    raise
                except BaseException as exc:
                    pending = exc
        finally:
            unit.end(failed)

    return wrapper


def _wrap_async_generator(
    fn: Callable[..., Any], node: str, kind: UnitKind, backend: str | None, capture: bool
) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        run = CURRENT_RUN.get()
        unit = None if run is None else run.open_unit(node, kind, backend, CURRENT_UNIT.get())
        failed = True
        try:
            agen = fn(*args, **kwargs)
            sent: Any = None
            pending: BaseException | None = None
            while True:
                token = None if unit is None else CURRENT_UNIT.set(unit)
                try:
                    if pending is None:
                        item = await agen.asend(sent)
                    else:
                        exc, pending = pending, None
                        item = await agen.athrow(exc)
                except StopAsyncIteration:
                    failed = False
                    return
                finally:
                    if token is not None:
                        CURRENT_UNIT.reset(token)
                if capture and unit is not None:
                    _capture_stream(unit, item)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = None if unit is None else CURRENT_UNIT.set(unit)
                    try:
                        await agen.aclose()
                    finally:
                        if token is not None:
                            CURRENT_UNIT.reset(token)
                    failed = False
                    raise
                except BaseException as exc:
                    pending = exc
        finally:
            if unit is not None:
                unit.end(failed)

    return wrapper


def _capture_stream(unit: UnitHandle, item: object) -> None:
    """Streamed chunks: the last chunk that carries usage (OpenAI ``include_usage``) wins."""
    usage = usage_of(item)
    if usage is not None:
        unit.input_tokens = usage[0] if usage[0] is not None else unit.input_tokens
        unit.output_tokens = usage[1] if usage[1] is not None else unit.output_tokens


def _admitted(fn: Callable[..., Any], backend: str, is_async: bool) -> Callable[..., Any]:
    """``fn`` run inside a slot of ``backend`` (scheduler admission, fail-open).

    The time spent waiting for the slot is recorded as a wait of the calling unit, so it is
    not learned as service demand.
    """
    from hermes_sdk.client.admission import Admission

    def admission() -> Admission:
        run = CURRENT_RUN.get()
        if run is None:
            return Admission(backend)
        return Admission(backend, run_id=run.run_id, app=run.app, deadline_s=run.deadline_s)

    def note_wait(start_ns: int) -> None:
        unit = CURRENT_UNIT.get()
        if unit is not None:
            unit.record_wait((perf_counter_ns() - start_ns) / 1e9)

    if is_async:

        async def async_inner(*args: Any, **kwargs: Any) -> Any:
            start_ns = perf_counter_ns()
            async with admission():
                note_wait(start_ns)
                return await fn(*args, **kwargs)

        return async_inner

    def inner(*args: Any, **kwargs: Any) -> Any:
        start_ns = perf_counter_ns()
        with admission():
            note_wait(start_ns)
            return fn(*args, **kwargs)

    return inner


def _is_async_callable(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004  # callable objects with async __call__
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def _decorate(
    fn: _F, kind: UnitKind, name: str | None, backend: str | None, admit: bool = False
) -> _F:
    if isinstance(fn, (classmethod, staticmethod)):
        return cast(_F, type(fn)(_decorate(fn.__func__, kind, name, backend, admit)))
    if env_disabled():
        return fn
    if not callable(fn) or inspect.isclass(fn):
        raise TypeError(
            f"hermes unit decorators need a function or method, got {type(fn).__name__}"
            " (decorate the class's methods instead)"
        )
    node = check_name(name if name is not None else unit_name(fn), "unit name")
    capture = kind == "llm"
    target: Callable[..., Any] = fn
    if admit:
        if backend is None:
            raise GraphError(f"admit=True needs a backend to hold a slot of ({node!r})")
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise TypeError("admit=True works on functions and coroutine functions, not generators")
        target = functools.wraps(fn)(_admitted(fn, backend, _is_async_callable(fn)))
    if inspect.isasyncgenfunction(fn):
        wrapper = _wrap_async_generator(fn, node, kind, backend, capture)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _wrap_generator(fn, node, kind, backend, capture)
    elif _is_async_callable(fn):
        wrapper = _wrap_coroutine(target, node, kind, backend, capture)
    else:
        wrapper = _wrap_sync(target, node, kind, backend, capture)
    functools.update_wrapper(wrapper, fn)
    wrapper.__hermes_unit__ = (node, kind, backend)  # type: ignore[attr-defined]
    return cast(_F, wrapper)


def _check(kind: str, backend: str | None) -> UnitKind:
    if kind not in UNIT_KINDS:
        raise GraphError(f"kind must be one of {sorted(UNIT_KINDS)}, got {kind!r}")
    if backend is not None:
        check_name(backend, "backend")
    return cast(UnitKind, kind)


@overload
def unit(fn: _F, /) -> _F: ...
@overload
def unit(
    fn: None = None,
    /,
    *,
    kind: UnitKind = "custom",
    name: str | None = None,
    backend: str | None = None,
    admit: bool = False,
) -> Callable[[_F], _F]: ...
def unit(
    fn: _F | None = None,
    /,
    *,
    kind: UnitKind = "custom",
    name: str | None = None,
    backend: str | None = None,
    admit: bool = False,
) -> _F | Callable[[_F], _F]:
    """Record each call of the decorated callable as a unit of the current run.

    ``kind`` is one of llm, tool, retriever, dnn, container, custom; ``name`` defaults to the
    qualified function name; ``backend`` names the serving backend the unit uses. Works bare
    (``@hermes.unit``) or with arguments. With ``admit=True`` each call first holds a slot of
    ``backend`` at the configured scheduler (``configure(scheduler_url=...)``; without one, or
    with the scheduler down, it runs at once) and the wait is not counted as service. Raises
    :class:`GraphError` at decoration time for an invalid kind, name or backend.
    """
    checked = _check(kind, backend)
    if fn is not None:
        return _decorate(fn, checked, name, backend, admit)
    return lambda f: _decorate(f, checked, name, backend, admit)


class KindDecorator:
    """``@hermes.llm`` / ``@hermes.tool`` / ``@hermes.retriever``: :func:`unit` with a fixed kind.

    Works bare (``@hermes.tool``) or with ``name``, ``backend`` and ``admit`` (see :func:`unit`).
    """

    def __init__(self, kind: UnitKind, doc: str) -> None:
        self.kind = kind
        self.__doc__ = doc

    @overload
    def __call__(self, fn: _F, /) -> _F: ...
    @overload
    def __call__(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        backend: str | None = None,
        admit: bool = False,
    ) -> Callable[[_F], _F]: ...
    def __call__(
        self,
        fn: _F | None = None,
        /,
        *,
        name: str | None = None,
        backend: str | None = None,
        admit: bool = False,
    ) -> _F | Callable[[_F], _F]:
        if fn is None:
            return unit(kind=self.kind, name=name, backend=backend, admit=admit)
        return _decorate(fn, self.kind, name, backend)

    def __repr__(self) -> str:
        return f"hermes.{self.kind}"


llm = KindDecorator(
    "llm", "An LLM call unit; input/output tokens are read from the return value when it has usage."
)
tool = KindDecorator("tool", "A tool call unit (code execution, search API, calculator...).")
retriever = KindDecorator("retriever", "A retrieval unit (vector search, document fetch).")
