"""Client-side prewarm callbacks: ``hermes.on_prewarm(backend, fn)``.

An app process can warm its own backend (open a connection pool, load a model) when the
prewarm planner predicts it will be needed. Whoever receives planner signals in this process
(the prewarm adapter for client callbacks, a scheduler subscription) calls
:func:`dispatch_prewarm`; callbacks run on a small daemon thread pool, so a slow warm-up never
blocks the deliverer, and their exceptions are logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol, TypeVar, overload

from hermes_sdk.graph.records import check_name

log = logging.getLogger("hermes_sdk.instrument")

ANY_BACKEND = "*"
"""Subscribe to every backend's signals."""


class PrewarmNotice(Protocol):
    """What a callback receives (``hermes_sdk.prewarm``'s ``PrewarmSignal`` fits)."""

    @property
    def action(self) -> Literal["prewarm", "release"]:
        """``prewarm`` (warm it now) or ``release`` (it may go cold)."""

    @property
    def backend(self) -> str:
        """The backend the signal is about."""

    @property
    def eta_s(self) -> float | None:
        """Predicted seconds until the backend is needed (prewarm only)."""


PrewarmCallback = Callable[[PrewarmNotice], object]
_C = TypeVar("_C", bound=PrewarmCallback)

_lock = threading.Lock()
_callbacks: dict[str, list[tuple[PrewarmCallback, bool]]] = {}
_pool: ThreadPoolExecutor | None = None


@overload
def on_prewarm(backend: str, fn: _C, /, *, releases: bool = False) -> _C: ...
@overload
def on_prewarm(backend: str, /, *, releases: bool = False) -> Callable[[_C], _C]: ...
def on_prewarm(
    backend: str, fn: _C | None = None, /, *, releases: bool = False
) -> _C | Callable[[_C], _C]:
    """Call ``fn(notice)`` when ``backend`` (or any, with ``"*"``) should be prewarmed.

    With ``releases=True`` ``fn`` also receives ``release`` notices. Usable as a decorator
    (``@hermes.on_prewarm("sql-db")``); returns ``fn`` unchanged. Raises GraphError for an
    invalid backend name.
    """
    if backend != ANY_BACKEND:
        check_name(backend, "backend")

    def register(callback: _C) -> _C:
        with _lock:
            _callbacks.setdefault(backend, []).append((callback, releases))
        return callback

    return register if fn is None else register(fn)


def remove_prewarm(backend: str, fn: PrewarmCallback) -> bool:
    """Unsubscribe ``fn`` from ``backend``; ``True`` if it was subscribed."""
    with _lock:
        entries = _callbacks.get(backend, [])
        kept = [(cb, rel) for cb, rel in entries if cb is not fn]
        _callbacks[backend] = kept
        return len(kept) != len(entries)


def _run(callback: PrewarmCallback, notice: PrewarmNotice) -> None:
    try:
        callback(notice)
    except Exception:
        log.exception("hermes: prewarm callback %r failed for %s", callback, notice.backend)


def dispatch_prewarm(notice: PrewarmNotice) -> int:
    """Hand ``notice`` to every matching callback (on a worker thread); returns how many."""
    global _pool
    try:
        with _lock:
            matching = [
                cb
                for key in (notice.backend, ANY_BACKEND)
                for cb, releases in _callbacks.get(key, [])
                if notice.action == "prewarm" or releases
            ]
            if matching and _pool is None:
                _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hermes-prewarm")
            pool = _pool
        for callback in matching:
            assert pool is not None
            pool.submit(_run, callback, notice)
        return len(matching)
    except Exception as exc:  # e.g. interpreter shutting down: the pool refuses work
        log.debug("hermes: prewarm dispatch failed: %r", exc)
        return 0


def clear_prewarm_callbacks() -> None:
    """Forget every callback (tests, reconfiguration)."""
    with _lock:
        _callbacks.clear()
