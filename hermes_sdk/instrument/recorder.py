"""Fail-open transport of instrumentation events: a bounded queue and a daemon flusher thread.

The hot path (:meth:`Recorder.emit`) is a length check and a ``deque.append``. A background
thread sends batches to an :class:`EventSink`. Nothing here ever raises into the app: a full
queue drops the event and counts it, a failing sink is logged once per outage and counted, and
process exit flushes what is queued within a timeout. After ``os.fork`` the child starts with an
empty queue and a fresh (lazily started) flusher, so the parent's events are not sent twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

log = logging.getLogger("hermes_sdk.instrument")

Event = dict[str, object]
"""One wire event: ``run_start``, ``unit_start``, ``unit_end`` or ``run_end`` (docs/protocol.md)."""
_Pending = Event | tuple[Callable[..., Event], object, object]
"""A queued event: a dict, or ``(build, a, b)`` turned into one by the flusher thread."""

DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_BATCH_SIZE: Final = 256
DEFAULT_FLUSH_INTERVAL_S: Final = 0.005
"""Longest an event lingers in the queue to be batched with others before it is sent."""
_IDLE_POLL_S: Final = 1.0
DEFAULT_EXIT_TIMEOUT_S: Final = 2.0


@runtime_checkable
class EventSink(Protocol):
    """Where batches of events go (the scheduler's ``POST /v1/events``, a list in tests)."""

    def send(self, events: list[Event]) -> None:
        """Deliver ``events`` in order; raise on failure (the recorder counts and logs it)."""


class ListSink:
    """An in-process sink that keeps every batch it is sent (tests, embedded debugging)."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self._lock = threading.Lock()

    def send(self, events: list[Event]) -> None:
        """Append a copy of the batch."""
        with self._lock:
            self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        """All events received so far, in order."""
        with self._lock:
            return [e for batch in self.batches for e in batch]


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """Counters of a recorder since it was created (or since fork, in a child)."""

    queued: int
    sent: int
    dropped: int
    lost: int
    send_errors: int


class Recorder:
    """Bounded event queue with a daemon flusher that batches events to ``sink``.

    ``dropped`` counts events refused because the queue was full; ``lost`` counts events whose
    batch the sink failed to take; ``send_errors`` counts failed ``send`` calls.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        max_queue: int = DEFAULT_QUEUE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        exit_timeout_s: float = DEFAULT_EXIT_TIMEOUT_S,
        label: str = "events",
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be >= 1")
        self.sink = sink
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.exit_timeout_s = exit_timeout_s
        self.label = label
        self.sent = 0
        self.dropped = 0
        self.lost = 0
        self.send_errors = 0
        self._init_runtime()
        _LIVE.add(self)

    def _init_runtime(self) -> None:
        """(Re)create every thread-owned part: after ``__init__`` and in a forked child."""
        self._queue: deque[_Pending] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._busy = False
        self._closed = False
        self._started = False
        self._sleeping = True  # True while the flusher waits for work (or is not started)
        self._thread: threading.Thread | None = None
        self._outage = False

    # -- hot path ---------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Queue one event; drop and count it if the queue is full. Never blocks, never raises."""
        queue = self._queue
        if len(queue) >= self.max_queue or self._closed:
            self.dropped += 1
            return
        queue.append(event)
        if self._sleeping:
            self._wake_flusher()

    def emit_lazy(self, build: Callable[..., Event], a: object, b: object = None) -> None:
        """Queue ``build(a, b)`` to be called on the flusher thread (keeps dict-building off the
        app's path). ``build`` must only read values that no longer change."""
        queue = self._queue
        if len(queue) >= self.max_queue or self._closed:
            self.dropped += 1
            return
        queue.append((build, a, b))
        if self._sleeping:
            self._wake_flusher()

    def _wake_flusher(self) -> None:
        """First event since the flusher went idle: start or wake it (once per idle period)."""
        self._sleeping = False
        if not self._started:
            self._start()
        else:
            self._wake.set()

    # -- control ----------------------------------------------------------------------------
    def _start(self) -> None:
        with self._idle:
            if self._started:
                return
            self._thread = threading.Thread(target=self._loop, name="hermes-recorder", daemon=True)
            self._started = True
            self._thread.start()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every queued event was handed to the sink; ``False`` on timeout."""
        if not self._queue and not self._busy:
            return True
        if not self._started:
            self._start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._idle:
            while self._queue or self._busy:
                self._wake.set()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(0.05 if remaining is None else min(remaining, 0.05))
        return True

    def close(self, timeout_s: float | None = None) -> bool:
        """Flush within ``timeout_s`` (default ``exit_timeout_s``), then stop accepting events."""
        timeout = self.exit_timeout_s if timeout_s is None else timeout_s
        drained = self.flush(timeout)
        self._closed = True
        self._wake.set()
        if not drained:
            log.warning(
                "hermes: %d %s not handled before the timeout", len(self._queue), self.label
            )
        return drained

    def stats(self) -> RecorderStats:
        """Current counters."""
        return RecorderStats(
            queued=len(self._queue),
            sent=self.sent,
            dropped=self.dropped,
            lost=self.lost,
            send_errors=self.send_errors,
        )

    # -- flusher thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        wake = self._wake
        while not self._closed:
            self._sleeping = True
            if not self._queue:
                wake.wait(_IDLE_POLL_S)
            self._sleeping = False
            wake.clear()
            if self.flush_interval_s > 0:  # let a burst gather into one batch; flush() cuts it
                wake.wait(self.flush_interval_s)
                wake.clear()
            try:
                self._drain()
            except Exception:  # the flusher must outlive any bug below it
                log.exception("hermes: event flusher error")
                self._busy = False

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            self._busy = True
            batch: list[Event] = []
            while queue and len(batch) < self.batch_size:
                item = queue.popleft()
                if isinstance(item, tuple):
                    try:
                        item = item[0](item[1], item[2])
                    except Exception as exc:
                        self.lost += 1
                        log.debug("hermes: could not build event: %r", exc)
                        continue
                batch.append(item)
            if batch:
                self._send(batch)
            self._busy = False
        with self._idle:
            self._busy = False
            self._idle.notify_all()

    def _send(self, batch: list[Event]) -> None:
        try:
            self.sink.send(batch)
        except Exception as exc:
            self.send_errors += 1
            self.lost += len(batch)
            if not self._outage:
                self._outage = True
                log.warning(
                    "hermes: event sink failed, events are dropped until it recovers: %r", exc
                )
            return
        self.sent += len(batch)
        if self._outage:
            self._outage = False
            log.info("hermes: event sink recovered")


_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for recorder in list(_LIVE):
        recorder._init_runtime()


def _flush_all_at_exit() -> None:
    for recorder in list(_LIVE):
        if not recorder._closed:
            recorder.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_all_at_exit)
