"""Completed runs on their way to the store and the graphs: a queue bounded by memory, in batches.

Ending a run costs the app one :meth:`RunLearner.submit` (a size estimate, a lock, an append). A
daemon thread takes *everything* queued at once and hands it to ``handle`` (the runtime stores it
in one transaction and learns it, see :meth:`GraphRegistry.observe_many`), so the batch grows
with the backlog: a store that is slow per write is amortised over more runs, not fallen behind.

The queue is bounded by the estimated bytes its runs hold (:func:`estimate_bytes`), in flight
included, not by a count: a run that would cross ``max_bytes`` is dropped and counted, and a
warning says so at most once per ``warn_interval_s``. Every counter changes under the one lock,
so ``submitted == handled + dropped + pending`` holds exactly at any quiescent moment. At process
exit (and :meth:`close`) what is queued gets ``exit_timeout_s`` to be handled, as one batch.
After ``os.fork`` a child starts with an empty queue (the parent's runs are the parent's).

Backpressure (opt-in, ``backpressure=True``): an app thread that never lets go of the GIL starves
the learner (every GIL release of the learner, a store write, costs it up to the 5 ms switch
interval to get the GIL back), so the queue fills and runs are dropped. With backpressure on,
``submit()`` sleeps :data:`BACKPRESSURE_SLEEP_S` at a time (which releases the GIL) while the
queue holds more than :data:`BACKPRESSURE_HIGH_FRACTION` of ``max_bytes``, at most
:data:`BACKPRESSURE_MAX_SLEEPS` times per call: the app is slowed to the learner's pace instead
of losing runs, and no call waits more than about 5 ms. Off by default: like OpenTelemetry's
batch processor, the default drops and counts rather than slow the app.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hermes_sdk.graph.records import RunPath

log = logging.getLogger("hermes_sdk.instrument")

DEFAULT_MAX_BYTES: Final = 4 * 1024 * 1024
"""Default bound of the queue of completed runs (estimated bytes, in-flight batch included):
about 800 runs of 13 stages. Chosen by measurement (docs/decisions.md, issue 29): 80,000-run
SQLite soaks at 2 / 4 / 8 / 16 MiB grew the app by about the bound plus ~15 MiB, while the
process learner dropped 3,879 runs at 2 MiB (its merged batches need a backlog) and 159 at 4."""
DEFAULT_EXIT_TIMEOUT_S: Final = 5.0
"""How long process exit waits for queued runs to be handled."""
WARN_INTERVAL_S: Final = 60.0
"""Least seconds between two warnings about dropped runs."""
_IDLE_POLL_S: Final = 1.0
BACKPRESSURE_HIGH_FRACTION: Final = 1 / 8
"""With backpressure, ``submit()`` yields while the queue holds more than this share of its
bound (estimated bytes)."""
BACKPRESSURE_SLEEP_S: Final = 200e-6
"""One yield of ``submit()`` under backpressure, seconds."""
BACKPRESSURE_MAX_SLEEPS: Final = 25
"""Most yields per ``submit()`` (25 x 200 us: about 5 ms added per call at most)."""

# Bytes a queued RunPath holds (CPython 3.11, 64-bit), measured with tracemalloc in
# tests/instrument/test_learner.py, with ~8% headroom: the path object and its run_id, per stage
# a Stage, its calls tuple and a latency float, per call a Call with two token ints and a float.
_BASE_BYTES: Final = 400
_STAGE_BYTES: Final = 140
_CALL_BYTES: Final = 216
BYTES_OVERHEAD: Final = 33
"""Bytes of a ``bytes`` object beyond its content (CPython 3.11, 64-bit)."""


def estimate_bytes(path: RunPath) -> int:
    """Upper estimate of the memory a queued ``path`` holds, in bytes (O(stages))."""
    stages = path.stages
    calls = 0
    for stage in stages:
        calls += len(stage.calls)
    return _BASE_BYTES + len(path.run_id) + _STAGE_BYTES * len(stages) + _CALL_BYTES * calls


@dataclass(frozen=True, slots=True)
class LearnerStats:
    """Counters of a learner since it was created (or since fork, in a child).

    ``submitted`` runs were offered; ``handled`` reached ``handle`` (stored and learned, or
    counted as failed by it); ``dropped`` were refused because the queue was full (or closed),
    or, ``unencodable`` of them, because ``encode`` refused them (a value ``marshal`` cannot
    write); ``pending`` wait now, holding about ``pending_bytes`` of ``max_bytes``. ``batches``
    counts calls of ``handle``; ``peak_bytes`` is the most the queue ever held.
    ``backpressure_sleeps`` counts the sleeps of :data:`BACKPRESSURE_SLEEP_S` that ``submit()``
    made (backpressure on). ``submitted == handled + dropped + pending`` when quiescent.
    """

    submitted: int
    handled: int
    dropped: int
    pending: int
    pending_bytes: int
    peak_bytes: int
    max_bytes: int
    batches: int
    backpressure_sleeps: int = 0
    unencodable: int = 0


class RunLearner:
    """Memory-bounded queue of completed runs with one daemon thread handling them in batches."""

    def __init__(
        self,
        handle: Callable[[list[Any]], None],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        exit_timeout_s: float = DEFAULT_EXIT_TIMEOUT_S,
        warn_interval_s: float = WARN_INTERVAL_S,
        backpressure: bool = False,
        encode: Callable[[RunPath], bytes] | None = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be an int >= 1, got {max_bytes!r}")
        self.handle = handle
        self.max_bytes = max_bytes
        self.exit_timeout_s = exit_timeout_s
        self.warn_interval_s = warn_interval_s
        self.backpressure = backpressure
        self.encode = encode
        """None: the queue holds the runs; else it holds ``encode(run)`` (and ``handle`` gets
        those), each counted as its length plus :data:`BYTES_OVERHEAD` (the learner process:
        ~8x the runs in the same bound)."""
        self._high_bytes = int(max_bytes * BACKPRESSURE_HIGH_FRACTION)
        self._init_runtime()
        _LIVE.add(self)

    def _init_runtime(self) -> None:
        """(Re)create the queue, counters and thread state: after ``__init__`` and after fork."""
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[Any] = []
        self._sizes: list[int] = []
        self._bytes = 0  # queued + in flight
        self._peak = 0
        self._in_flight = 0  # runs being handled now
        self.submitted = 0
        self.handled = 0
        self.dropped = 0
        self.batches = 0
        self.backpressure_sleeps = 0
        self.unencodable = 0
        self._dropped_unwarned = 0
        self._last_warn = -float("inf")
        self._unencodable_unwarned = 0
        self._last_encode_warn = -float("inf")
        self._closed = False
        self._waiting = False  # the thread sleeps on the condition
        self._thread: threading.Thread | None = None

    # -- app side ---------------------------------------------------------------------------
    def submit(self, path: RunPath) -> bool:
        """Queue ``path``; drop and count it if it does not fit. Never blocks long, never raises.

        With backpressure on, first sleeps (bounded: :data:`BACKPRESSURE_MAX_SLEEPS`) while the
        queue is above its high watermark."""
        encode = self.encode
        item: Any = path
        if encode is None:
            size = estimate_bytes(path)
        else:
            try:
                item = encode(path)
            except Exception as exc:  # a value marshal refuses: not a full queue
                self._refuse_unencodable(path, exc)
                return False
            size = len(item) + BYTES_OVERHEAD
        warn = False
        sleeps = self._yield_to_learner() if self.backpressure else 0
        with self._cond:
            self.submitted += 1
            self.backpressure_sleeps += sleeps
            if self._closed or self._bytes + size > self.max_bytes:
                self.dropped += 1
                self._dropped_unwarned += 1
                now = time.monotonic()
                if not self._closed and now - self._last_warn >= self.warn_interval_s:
                    self._last_warn = now
                    warn = True
                    dropped, self._dropped_unwarned = self._dropped_unwarned, 0
            else:
                self._queue.append(item)
                self._sizes.append(size)
                self._bytes += size
                if self._bytes > self._peak:
                    self._peak = self._bytes
                if self._thread is None:
                    self._start()
                elif self._waiting:
                    self._cond.notify()
                return True
        if warn:
            self._warn_dropped(dropped)
        return False

    def _refuse_unencodable(self, path: RunPath, exc: Exception) -> None:
        """Count a run ``encode`` refused (of ``dropped``: it is not learned) and warn at most
        once per ``warn_interval_s``, apart from the full queue's warning: the cause is a value
        in the run, not the store's pace."""
        with self._cond:
            self.submitted += 1
            self.dropped += 1
            self.unencodable += 1
            self._unencodable_unwarned += 1
            now = time.monotonic()
            if now - self._last_encode_warn < self.warn_interval_s:
                return
            self._last_encode_warn = now
            count, self._unencodable_unwarned = self._unencodable_unwarned, 0
            total = self.unencodable
        log.warning(
            "hermes: %d completed run(s) dropped, not learned: the learner process cannot "
            "encode them (last: run %r of app %r: %r; %d in total). A value in the run is not "
            "a plain str/int/float/bool/None. Next warning in %.0f s at the earliest.",
            count,
            path.run_id,
            path.app,
            exc,
            total,
            self.warn_interval_s,
        )

    def _yield_to_learner(self) -> int:
        """Sleep while the queue is above the high watermark, at most BACKPRESSURE_MAX_SLEEPS
        times (never on the learner's own thread); the number of sleeps."""
        sleeps = 0
        # a plain read of an int: the lock is not needed to decide whether to wait a little
        while self._bytes > self._high_bytes and sleeps < BACKPRESSURE_MAX_SLEEPS:
            thread = self._thread
            if thread is None or threading.current_thread() is thread or self._closed:
                break
            time.sleep(BACKPRESSURE_SLEEP_S)
            sleeps += 1
        return sleeps

    def _warn_dropped(self, dropped: int) -> None:
        log.warning(
            "hermes: %d completed run(s) dropped, not learned: the queue of runs waiting for "
            "the store is full (%.1f MiB; %d dropped in total). The store is slower than the "
            "app; raise HERMES_LEARN_QUEUE_MIB or configure(learn_queue_bytes=...) to absorb "
            "longer bursts, or set HERMES_LEARN_BACKPRESSURE=1 / configure(learn_backpressure="
            "True) to slow the app to the learner's pace instead. Next warning in %.0f s at "
            "the earliest.",
            dropped,
            self.max_bytes / 2**20,
            self.dropped,
            self.warn_interval_s,
        )

    def _start(self) -> None:
        """Start the thread (caller holds the lock)."""
        self._thread = threading.Thread(target=self._loop, name="hermes-learner", daemon=True)
        self._thread.start()

    # -- control ----------------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every run queued so far was handled; ``False`` on timeout."""
        if threading.current_thread() is self._thread:
            return False  # called from handle(): waiting for itself would never end
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._in_flight:
                if self._thread is None:
                    self._start()
                self._cond.notify_all()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.05 if remaining is None else min(remaining, 0.05))
        return True

    def close(self, timeout_s: float | None = None) -> bool:
        """Handle what is queued within ``timeout_s`` (default ``exit_timeout_s``), then refuse
        (and count as dropped) further runs. Logs how many were left if it timed out."""
        timeout = self.exit_timeout_s if timeout_s is None else timeout_s
        drained = self.flush(timeout)
        with self._cond:
            self._closed = True
            left = len(self._queue) + self._in_flight
            self._cond.notify_all()
        if not drained:
            log.warning(
                "hermes: %d completed runs not stored before the %.1f s exit timeout", left, timeout
            )
        return drained

    def stats(self) -> LearnerStats:
        """Current counters (consistent with each other: read under the lock)."""
        with self._cond:
            return LearnerStats(
                submitted=self.submitted,
                handled=self.handled,
                dropped=self.dropped,
                pending=len(self._queue) + self._in_flight,
                pending_bytes=self._bytes,
                peak_bytes=self._peak,
                max_bytes=self.max_bytes,
                batches=self.batches,
                backpressure_sleeps=self.backpressure_sleeps,
                unencodable=self.unencodable,
            )

    # -- learner thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue:
                    if self._closed:
                        return
                    self._waiting = True
                    cond.wait(_IDLE_POLL_S)
                    self._waiting = False
                batch, self._queue = self._queue, []
                sizes, self._sizes = self._sizes, []
                self._in_flight = len(batch)
            try:
                self.handle(batch)
            except Exception:  # the thread must outlive any bug below it; handle counts
                log.exception("hermes: learner error (%d runs not learned)", len(batch))
            with cond:
                self._in_flight = 0
                self._bytes -= sum(sizes)
                self.handled += len(batch)
                self.batches += 1
                cond.notify_all()


_LIVE: weakref.WeakSet[RunLearner] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for learner in list(_LIVE):
        learner._init_runtime()


def _close_all_at_exit() -> None:
    for learner in list(_LIVE):
        if not learner._closed:
            learner.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
