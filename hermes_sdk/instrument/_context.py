"""The two context variables every instrumented call reads (defined with the handles they hold,
in :mod:`hermes_sdk.instrument.handles`), and how they cross thread boundaries.

``asyncio`` tasks copy the context when they are created, so runs and units follow ``await``,
``asyncio.gather`` and ``TaskGroup`` on their own. Threads do not: submit work through
:func:`context_executor` or wrap the callable with :func:`wrap_context`. (``asyncio.to_thread``
already copies the context; ``loop.run_in_executor`` does not.)
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from hermes_sdk.instrument.handles import CURRENT_RUN, CURRENT_UNIT

__all__ = [
    "CURRENT_RUN",
    "CURRENT_UNIT",
    "ContextThreadPoolExecutor",
    "context_executor",
    "wrap_context",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def wrap_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Bind ``fn`` to a copy of the current context, so a thread running it sees this run/unit.

    The copy is taken now, at wrap time; each call of the result runs in a fresh copy of that
    snapshot, so the wrapped callable may be called several times and from several threads.
    """
    snapshot = contextvars.copy_context()

    def bound(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return snapshot.copy().run(fn, *args, **kwargs)

    bound.__wrapped__ = fn  # type: ignore[attr-defined]
    bound.__name__ = getattr(fn, "__name__", "bound")
    bound.__qualname__ = getattr(fn, "__qualname__", bound.__name__)
    bound.__doc__ = getattr(fn, "__doc__", None)
    return bound


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in a copy of the submitter's context."""

    def submit(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_R]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the caller's context (run and unit)."""
        ctx = contextvars.copy_context()
        return super().submit(lambda: ctx.run(fn, *args, **kwargs))


def context_executor(
    max_workers: int | None = None, *, thread_name_prefix: str = "hermes"
) -> ThreadPoolExecutor:
    """A thread pool whose ``submit``/``map`` carry the caller's run and unit into the worker."""
    return ContextThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
