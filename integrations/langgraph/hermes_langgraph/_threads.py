"""A LangGraph thread's run across interrupts: which invocation continues which paused run.

LangGraph pauses a thread at an ``interrupt()`` (or a static ``interrupt_before/after``): the
interrupted node task raises ``GraphInterrupt`` (``on_chain_error``); LangGraph 1.2 tells its
``langgraph.callbacks.GraphCallbackHandler``s ``on_interrupt`` (``checkpoint_ns == ()`` for
the top graph); the top graph then *ends normally* (``on_chain_end``: the interrupt is
suppressed at the top, see ``langgraph/pregel/_loop.py``, ``__exit__``). A later invocation on
the same ``thread_id`` with a ``Command`` (``Command(resume=...)``) or ``None`` as input
continues the thread, re-running the interrupted task with the same ``langgraph_checkpoint_ns``
(task id) and step.

A run on a thread also records where it is at every superstep (durable execution): a process
that continues the thread after this one crashed (``invoke(None, config)``) continues the run
from the last completed superstep; the time in between counts as paused.

The thread is read from the root ``on_chain_start`` metadata, where langchain-core copies the
config's scalar ``configurable`` values (``thread_id``; ``checkpoint_ns`` when not empty). A run
paused here is stored under a resume key of (tenant, app, thread_id, checkpoint_ns) in the
Hermes store, so another process sharing the store (or this one after a restart) resumes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

from langgraph.types import Command

from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument.paused_record import PROGRESS_NAMESPACE, PausedRun, resume_key
from hermes_sdk.instrument.paused_store import (
    abandon_paused,
    paused_store,
    store_paused,
    sweep_abandoned,
    take_paused,
)

log = logging.getLogger("hermes_langgraph")

MIN_SWEEP_INTERVAL_S: Final = 60.0
MAX_SWEEP_INTERVAL_S: Final = 3600.0
"""Paused runs older than the horizon are looked for every ``horizon_s / 10`` seconds, clamped
to these bounds, on a background thread (a sweep reads every stored pause record)."""
MAX_LOCAL_KEYS: Final = 100_000


def thread_key(app: str, tenant: str | None, metadata: Mapping[str, object] | None) -> str | None:
    """The resume key of the thread an invocation runs on, or ``None`` without ``thread_id``."""
    if not metadata:
        return None
    thread = metadata.get("thread_id")
    if isinstance(thread, bool) or not isinstance(thread, (str, int)) or thread == "":
        return None
    ns = metadata.get("checkpoint_ns")
    return resume_key(
        "langgraph", tenant or "default", app, str(thread), ns if isinstance(ns, str) else ""
    )


def continues_thread(inputs: object) -> bool:
    """Whether an invocation's input continues its thread (``Command`` or ``None``) instead of
    starting over with new input."""
    return inputs is None or isinstance(inputs, Command)


class PausedThreads:
    """The paused runs a handler knows of: stored durably, keys paused here remembered.

    ``horizon_s``: paused runs older than this are ended as abandoned, when a continuation finds
    them too old, and by a background sweep (see ``MIN_SWEEP_INTERVAL_S``); ``on_abandoned``
    sees the path of each run ended so.
    """

    def __init__(
        self, horizon_s: float, on_abandoned: Callable[[RunPath], object] | None = None
    ) -> None:
        self.horizon_s = horizon_s
        self.on_abandoned = on_abandoned
        self._local: set[str] = set()
        self._lock = threading.Lock()
        self.sweep_interval_s = min(
            max(horizon_s / 10.0, MIN_SWEEP_INTERVAL_S), MAX_SWEEP_INTERVAL_S, horizon_s
        )
        self._next_sweep = time.time() + self.sweep_interval_s
        self._sweeping = False

    def put(self, key: str, paused: PausedRun) -> None:
        """Keep ``paused`` until a continuation of its thread (durably, if the store works)."""
        store = paused_store()
        store_paused(store, key, paused)
        take_paused(store, key, PROGRESS_NAMESPACE)  # the pause supersedes the progress record
        with self._lock:
            if len(self._local) >= MAX_LOCAL_KEYS:
                self._local.clear()
            self._local.add(key)

    def checkpoint(self, key: str, progress: PausedRun) -> None:
        """Record where a running run on the thread is (durable execution: a process that
        continues the thread after a crash continues the run from there)."""
        store_paused(paused_store(), key, progress, PROGRESS_NAMESPACE)

    def forget(self, key: str) -> None:
        """The thread's run ended: its progress record is no longer a run to continue."""
        store = paused_store()
        if store is None:
            return
        try:
            store.put_json(PROGRESS_NAMESPACE, key, {"ended": True})
        except Exception as exc:
            log.warning("hermes: could not clear a run's progress record: %r", exc)

    def take(self, key: str, *, now: float | None = None) -> PausedRun | None:
        """Claim the thread's paused run (else the progress of a run whose process died) to
        continue it; one paused too long is abandoned."""
        now = time.time() if now is None else now
        with self._lock:
            self._local.discard(key)
        store = paused_store()
        paused = take_paused(store, key) or take_paused(store, key, PROGRESS_NAMESPACE)
        if paused is not None and now - paused.paused_at >= self.horizon_s:
            self._abandon(paused, now)
            return None
        return paused

    def _abandon(self, paused: PausedRun, now: float | None = None) -> None:
        path = abandon_paused(paused, now=now)
        if path is not None and self.on_abandoned is not None:
            self.on_abandoned(path)

    def restart(self, key: str) -> None:
        """The thread got new input: a run paused on it here will never resume (abandoned)."""
        with self._lock:
            if key not in self._local:
                return
            self._local.discard(key)
        paused = take_paused(paused_store(), key)
        if paused is not None:
            self._abandon(paused)

    def sweep_soon(self, app: str, now: float) -> None:
        """Start a background sweep of ``app``'s paused runs if one is due (cheap otherwise)."""
        if now < self._next_sweep or self._sweeping:
            return
        with self._lock:
            if now < self._next_sweep or self._sweeping:
                return
            self._next_sweep = now + self.sweep_interval_s
            self._sweeping = True

        def run() -> None:
            try:
                self.sweep(app)
            except Exception as exc:
                log.warning("hermes: sweeping paused runs failed: %r", exc)
            finally:
                self._sweeping = False

        threading.Thread(target=run, name="hermes-pause-sweep", daemon=True).start()

    def sweep(self, app: str, *, now: float | None = None) -> list[RunPath]:
        """End the paused runs of ``app`` older than the horizon as abandoned; their paths."""
        paths = sweep_abandoned(paused_store(), self.horizon_s, app=app, now=now)
        if self.on_abandoned is not None:
            for path in paths:
                self.on_abandoned(path)
        return paths
