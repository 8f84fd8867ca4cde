"""``hermes.run``: a sync/async context manager and decorator that makes the code inside one run.

Also the two calls code inside a run makes about itself: :func:`current_hints` and :func:`record`.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from hermes_sdk.client.hints import Hints
from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import check_name
from hermes_sdk.instrument import handles as _handles
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.handles import CURRENT_RUN, CURRENT_UNIT, RunHandle, UnitHandle
from hermes_sdk.instrument.ranking import compute_hints
from hermes_sdk.instrument.run_ids import new_run_id

log = logging.getLogger("hermes_sdk.instrument")

_C = TypeVar("_C", bound=Callable[..., Any])
_Tokens = tuple[Token[RunHandle | None], Token[UnitHandle | None]]


def _drive(gen: Generator[Any, Any, Any], scope: RunScope) -> Generator[Any, Any, Any]:
    """Delegate to ``gen`` with the scope's run current only while ``gen`` runs.

    A decorated generator is a run of its own; the consumer's code between items is not.
    """
    sent: Any = None
    pending: BaseException | None = None
    while True:
        tokens = scope._activate()
        try:
            if pending is None:
                item = gen.send(sent)
            else:
                exc, pending = pending, None
                item = gen.throw(exc)
        except StopIteration as stop:
            return stop.value
        finally:
            scope._deactivate(tokens)
        try:
            sent = yield item
        except GeneratorExit:
            tokens = scope._activate()
            try:
                gen.close()
            finally:
                scope._deactivate(tokens)
            raise
        except BaseException as exc:
            pending = exc


class RunScope:
    """One ``with``/``async with`` block (or decorated call) that is a run of ``app``.

    Entering starts the run (a sub-run if another run is current) and makes it current; leaving
    ends it, failed if an exception escapes (the exception propagates unchanged). Use a scope
    object for one block at a time; as a decorator every call gets its own run.
    """

    __slots__ = ("_handle", "_tokens", "app", "deadline_s", "run_id", "tenant")

    def __init__(
        self,
        app: str,
        *,
        deadline_s: float | None = None,
        run_id: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self.app = app
        self.deadline_s = deadline_s
        self.run_id = run_id
        self.tenant = tenant
        self._handle: RunHandle | None = None
        self._tokens: _Tokens | None = None

    def _fresh(self) -> RunScope:
        return RunScope(
            self.app, deadline_s=self.deadline_s, run_id=self.run_id, tenant=self.tenant
        )

    def __enter__(self) -> RunHandle:
        handle = start_run(
            self.app, deadline_s=self.deadline_s, run_id=self.run_id, tenant=self.tenant
        )
        self._handle = handle
        if handle.active:
            self._tokens = (CURRENT_RUN.set(handle), CURRENT_UNIT.set(None))
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        handle = self._handle
        if handle is not None:
            handle.end(failed=exc_type is not None and exc_type is not GeneratorExit)

    def _leave(self) -> None:
        """Undo the context change of ``__enter__`` without ending the run."""
        tokens, self._tokens = self._tokens, None
        if tokens is not None:
            CURRENT_UNIT.reset(tokens[1])
            CURRENT_RUN.reset(tokens[0])

    def _activate(self) -> _Tokens | None:
        """Make this scope's run current (for one generator step); returns reset tokens."""
        handle = self._handle
        if handle is None or not handle.active:
            return None
        return (CURRENT_RUN.set(handle), CURRENT_UNIT.set(None))

    @staticmethod
    def _deactivate(tokens: _Tokens | None) -> None:
        if tokens is not None:
            CURRENT_UNIT.reset(tokens[1])
            CURRENT_RUN.reset(tokens[0])

    async def __aenter__(self) -> RunHandle:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: _C) -> _C:
        """Decorate ``fn`` so each call (or each generator iteration) is its own run."""
        if isinstance(fn, (classmethod, staticmethod)):
            return cast(_C, type(fn)(self(fn.__func__)))
        if inspect.isasyncgenfunction(fn):

            async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                scope = self._fresh()
                handle = scope.__enter__()  # enters and leaves around each step, below
                scope._leave()
                failed = True
                try:
                    tokens = scope._activate()
                    try:
                        agen = fn(*args, **kwargs)
                    finally:
                        scope._deactivate(tokens)
                    sent: Any = None
                    pending: BaseException | None = None
                    while True:  # as _drive, inline: no `yield from` for async generators
                        tokens = scope._activate()
                        try:
                            if pending is None:
                                item = await agen.asend(sent)
                            else:
                                exc, pending = pending, None
                                item = await agen.athrow(exc)
                        except StopAsyncIteration:
                            break
                        finally:
                            scope._deactivate(tokens)
                        try:
                            sent = yield item
                        except GeneratorExit:
                            tokens = scope._activate()
                            try:
                                await agen.aclose()
                            finally:
                                scope._deactivate(tokens)
                            raise
                        except BaseException as exc:
                            pending = exc
                    failed = False
                except GeneratorExit:
                    failed = False
                    raise
                finally:
                    handle.end(failed=failed)

            wrapper: Callable[..., Any] = agen_wrapper
        elif inspect.isgeneratorfunction(fn):

            def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                scope = self._fresh()
                handle = scope.__enter__()  # enters and leaves around each step, below
                scope._leave()
                failed = True
                try:
                    tokens = scope._activate()
                    try:
                        gen = fn(*args, **kwargs)
                    finally:
                        scope._deactivate(tokens)
                    result = yield from _drive(gen, scope)
                    failed = False
                    return result
                except GeneratorExit:
                    failed = False
                    raise
                finally:
                    handle.end(failed=failed)

            wrapper = gen_wrapper
        elif inspect.iscoroutinefunction(fn):

            async def coro_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh():
                    return await fn(*args, **kwargs)

            wrapper = coro_wrapper
        else:

            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._fresh():
                    return fn(*args, **kwargs)

            wrapper = sync_wrapper
        return cast(_C, functools.wraps(fn)(wrapper))


def run(
    app: str,
    *,
    deadline_s: float | None = None,
    run_id: str | None = None,
    tenant: str | None = None,
) -> RunScope:
    """Open a run of ``app``: ``with hermes.run("qa"):``, ``async with`` or ``@hermes.run(...)``.

    ``deadline_s`` is the run's relative deadline in seconds; ``run_id`` defaults to a random
    hex id; ``tenant`` defaults to the outer run's tenant, else ``"default"``. A run opened
    inside another run is a sub-run: recorded as its own run of ``app`` and as one unit named
    ``app`` of the outer run. Decorated units called inside are the run's units.
    """
    return RunScope(app, deadline_s=deadline_s, run_id=run_id, tenant=tenant)


def current_run() -> RunHandle | None:
    """The run current in this context, if any."""
    return CURRENT_RUN.get()


def current_hints() -> Hints | None:
    """Hints of the unit now running (or of the current run between units); ``None`` outside.

    The rank is computed locally from the app's learned graph on first request per unit and
    cached. Never raises.
    """
    try:
        unit = CURRENT_UNIT.get()
        if unit is not None:
            return unit.hints()
        run_handle = CURRENT_RUN.get()
        return None if run_handle is None else compute_hints(run_handle, None)
    except Exception as exc:
        log.debug("hermes: current_hints failed: %r", exc)
        return None


def record(*, input_tokens: int | None = None, output_tokens: int | None = None) -> None:
    """Set the token counts of the unit now running (explicit values beat return-value usage).

    Outside any unit this does nothing. Never raises.
    """
    unit = CURRENT_UNIT.get()
    if unit is not None:
        unit.record(input_tokens=input_tokens, output_tokens=output_tokens)


def start_run(
    app: str,
    *,
    deadline_s: float | None = None,
    run_id: str | None = None,
    tenant: str | None = None,
) -> RunHandle:
    """Start a run of ``app`` now and return its handle (end it with :meth:`RunHandle.end`).

    If a run is current in this context, the new run is a *sub-run*: it is recorded as its own
    run of ``app`` and also appears as one ``custom`` unit named ``app`` of the outer run (its
    tokens rolled up). ``deadline_s`` is relative to now. With instrumentation disabled the
    handle is inert and :meth:`RunHandle.end` returns ``None``. Raises :class:`GraphError` for
    an invalid app name or deadline.
    """
    check_name(app, "app")
    if deadline_s is not None and not (deadline_s >= 0.0):
        raise GraphError(f"deadline_s must be >= 0, got {deadline_s!r}")
    active = _rt.RUNTIME.enabled
    outer_unit = None
    outer = CURRENT_RUN.get()
    if active and outer is not None and outer.active and outer.end_ns is None:
        outer_unit = outer.open_unit(app, "custom", None, CURRENT_UNIT.get())
        if tenant is None:
            tenant = outer.tenant
    handle = RunHandle(
        app,
        run_id=run_id if run_id is not None else new_run_id(),
        tenant=tenant if tenant is not None else "default",
        deadline_s=deadline_s,
        active=active,
        outer_unit=outer_unit,
    )
    rec = _rt.RUNTIME.recorder
    if active and rec is not None:
        event: dict[str, object] = {
            "type": "run_start",
            "run_id": handle.run_id,
            "app": app,
            "ts": handle.started_at,
        }
        if deadline_s is not None:
            event["deadline_s"] = deadline_s
        rec.emit(event)
    if active and _handles.OBSERVERS:
        _handles.notify("run_started", handle)
    return handle
