"""The app's side of a learner in a child process (``configure(learner="process")``).

One interpreter has one GIL: an app thread that never waits (a CPU-bound producer of runs)
starves a learner thread, which then learns a tenth of the runs (see docs/decisions.md). Here the
runs are stored and learned by a child Python process on another core:

- **Start**: lazily, at the first batch of completed runs (or the first :meth:`sync` /
  :meth:`registry` that needs graphs), as ``python -m hermes_sdk.instrument.learner_child``: a
  fresh interpreter (the ``spawn`` semantics, never a fork of a threaded app), but through
  ``subprocess`` and not ``multiprocessing``, whose spawn re-imports the app's ``__main__``
  (re-running an unguarded script) and terminates daemon children in its own exit hook, before
  the runs are handed over (:mod:`learner_spawn`). A pipe and a socket pair (``pass_fds``),
  framed by :mod:`learner_wire`.
- **App to child**: :meth:`handle` is the :class:`~hermes_sdk.instrument.learner.RunLearner`'s
  ``handle``, so the queue bounded by memory, its drop-and-count and its counters are the thread
  learner's; each run waits there already flattened and marshalled (:func:`encode_run`, ~5 us
  per 13-stage run, on the app's thread when it ends) and the queue's thread, the feeder, joins
  them into frames of at most :data:`FRAME_MAX_RUNS` and writes each in one ``writev``. While the
  child is slow the write blocks and the batch stays counted in the queue's bytes, so the bound
  holds.
- **Child to app**: at most every :data:`STATUS_INTERVAL_S` while it learns, and in answer to
  each sync request, the child sends a pickled copy of every graph that learned since (one frame
  each, with its tenant's pooled prior), then its counters; a receiver thread installs them in
  the app's own registry (:func:`~hermes_sdk.instrument.learner_wire.install_graphs`) and
  refreshes due rank tables, so ``current_hints()`` keeps reading in-process tables. Hints lag
  the child by at most :data:`STATUS_INTERVAL_S` plus the rank tables' own staleness; after
  :meth:`sync` they are those of the thread learner on the same runs.
- **Exit**: :meth:`close` drains the queue into the pipe, asks for a sync (the child answers
  after storing everything before it), then closes the pipe; the child flushes and exits at
  end of stream, also when the app dies (``kill -9`` loses at most the batch being written: a
  torn frame is dropped whole, and each batch is one store transaction).
- **Fail open**: if the child cannot start, does not say hello within
  :data:`START_TIMEOUT_S`, or dies, this logs once, counts it, and hands every later batch (the
  one that failed included) to ``fallback``, the thread learner's in-process store and learning.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument.env_settings import LEARNER_ENV
from hermes_sdk.instrument.learner_frames import FrameReceiver, write_frame
from hermes_sdk.instrument.learner_spawn import (
    spawn_child,
)
from hermes_sdk.instrument.learner_wire import (
    FRAME_MAX_RUNS,
    RUNS,
    decode_run_list,
    encode_run,
    install_graphs,
    load_message,
    runs_body,
    sync_request,
)

log = logging.getLogger("hermes_sdk.instrument")

START_TIMEOUT_S: Final = 20.0
"""Longest wait for the child's hello (an interpreter start and the imports, ~1 s)."""


@dataclass(frozen=True, slots=True)
class ProcessLearnerStats:
    """Counters of the learner process side (cumulative over the child's life).

    ``sent`` runs were written to the pipe; the child ``handled`` that many (``completed``
    stored and learned, ``failed`` refused or not stored); ``lost`` were sent to a child that
    died before answering for them. ``failures`` counts children that could not start or died
    (each time the thread learner took over). ``child_rss_mib`` / ``child_peak_rss_mib`` are the
    child's resident memory and peak at its last status (0 before any); ``child_cpu_s`` its CPU
    seconds (user + system, all its threads) at that status."""

    started: bool
    sent: int
    handled: int
    completed: int
    failed: int
    lost: int
    failures: int
    graph_installs: int
    child_pid: int | None
    child_rss_mib: float
    child_peak_rss_mib: float
    child_cpu_s: float = 0.0


class ProcessLearner:
    """Stores and learns completed runs in a child process; installs its graphs here."""

    def __init__(
        self,
        store_url: str,
        *,
        fallback: Callable[[list[RunPath]], None],
        on_fallback: Callable[[], None],
        after_install: Callable[[GraphRegistry], None],
        drain: Callable[[float], bool],
        exit_timeout_s: float,
    ) -> None:
        self.store_url = store_url
        self.fallback = fallback
        """Learns a batch in this process (the thread learner's ``handle``)."""
        self.on_fallback = on_fallback
        """Called once when the child is given up (the runtime reopens its store here)."""
        self.after_install = after_install
        self.drain = drain
        """Hands every queued run to :meth:`handle` within a timeout (the RunLearner's close)."""
        self.exit_timeout_s = exit_timeout_s
        self.registry = GraphRegistry(None)
        """The graphs as the child learned them (what hints read); no store of its own."""
        self._init_state()
        _LIVE.add(self)

    def _init_state(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._write_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child: int | None = None
        self._receiver: threading.Thread | None = None
        self._hello = False
        self._failed = False
        self._closing = False
        self._seq = 0
        self._answered = 0  # highest sync request answered
        self._installed = False  # graphs installed since the rank tables were last refreshed
        self.sent = self.handled = self.completed = self.failed_runs = 0
        self.lost = self.failures = self.graph_installs = 0
        self.child_rss_mib = self.child_peak_rss_mib = self.child_cpu_s = 0.0

    # -- app side ---------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether runs go to the child (not given up on it)."""
        return not self._failed

    def handle(self, runs: list[bytes] | list[RunPath]) -> None:
        """Send ``runs`` (:func:`encode_run` blobs, as the RunLearner queues them for this
        learner, or runs) to the child in frames of at most :data:`FRAME_MAX_RUNS` runs (the
        RunLearner's thread); what could not be sent is learned here if the child is gone."""
        blobs = [r if isinstance(r, bytes) else encode_run(r) for r in runs]
        if self._failed or self._ensure_started() != "ok":
            self.fallback(decode_run_list(blobs))
            return
        fd = self._to_child
        for start in range(0, len(blobs), FRAME_MAX_RUNS):
            chunk = blobs[start : start + FRAME_MAX_RUNS]
            body = runs_body(chunk)
            try:
                with self._write_lock:
                    if fd is None or self._failed:
                        raise OSError("the learner process is closed")
                    write_frame(fd, body, RUNS)
            except OSError as exc:
                self._give_up(f"writing to it failed: {exc!r}")
                self.fallback(decode_run_list(blobs[start:]))
                return
            with self._cond:
                self.sent += len(chunk)

    def registry_for_hints(self) -> GraphRegistry:
        """The registry the child's graphs are installed in (starting the child if needed)."""
        if self._proc is None and not self._failed:  # the hints' path: no lock once started
            self._start()
        return self.registry

    def sync(self, timeout_s: float | None) -> bool:
        """Wait until the child answered for every run sent so far (and its graphs are
        installed); ``True`` at once when it never ran. ``False`` on timeout."""
        if self._failed or self._proc is None:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        started = self._ensure_started(deadline)
        if started != "ok":
            return started == "failed"  # given up: the thread learner answers from now on
        with self._cond:
            self._seq += 1
            seq = self._seq
        try:
            if not self._write_lock.acquire(timeout=-1 if deadline is None else _left(deadline)):
                return False
            try:
                if self._to_child is None:
                    return self._failed
                write_frame(self._to_child, sync_request(seq))
            finally:
                self._write_lock.release()
        except OSError as exc:
            self._give_up(f"writing to it failed: {exc!r}")
            return True
        with self._cond:
            while self._answered < seq and not self._failed:
                left = None if deadline is None else _left(deadline)
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float | None = None) -> bool:
        """Hand over what is queued, wait for the child to store it, close the pipe and let the
        child exit; ``False`` if that did not finish within ``timeout_s`` (default
        ``exit_timeout_s``): the child then still stores what it holds before it exits."""
        timeout = self.exit_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        drained = self.drain(timeout)
        synced = True
        if self._proc is not None and not self._failed:
            synced = self.sync(_left(deadline))
        with self._cond:
            self._closing = True
        with self._write_lock:
            fd, self._to_child = self._to_child, None
        if fd is not None:
            os.close(fd)  # end of stream: the child stores what it holds and exits
        proc = self._proc
        if proc is not None:
            # past the wait it finishes on its own: never kill a child that is writing the store
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(_left(deadline), 0.2))
        if not synced:
            with self._cond:
                behind = self.sent - self.handled
            log.warning(
                "hermes: the learner process had not stored %d runs after %.1f s at exit; it "
                "goes on storing them after the app is gone",
                behind,
                timeout,
            )
        return drained and synced

    def stats(self) -> ProcessLearnerStats:
        """Current counters (consistent with each other)."""
        with self._cond:
            proc = self._proc
            return ProcessLearnerStats(
                started=proc is not None,
                sent=self.sent,
                handled=self.handled,
                completed=self.completed,
                failed=self.failed_runs,
                lost=self.lost,
                failures=self.failures,
                graph_installs=self.graph_installs,
                child_pid=None if proc is None else proc.pid,
                child_rss_mib=self.child_rss_mib,
                child_peak_rss_mib=self.child_peak_rss_mib,
                child_cpu_s=self.child_cpu_s,
            )

    # -- the child --------------------------------------------------------------------------
    def _ensure_started(self, deadline: float | None = None) -> str:
        """Start the child if it never ran and wait for its hello: ``"ok"``, ``"failed"`` (given
        up: the thread learner answers) or ``"timeout"`` (``deadline`` passed first)."""
        if not self._start():
            return "failed"
        end = time.monotonic() + START_TIMEOUT_S
        with self._cond:
            while not self._hello and not self._failed:
                now = time.monotonic()
                if now >= end or (deadline is not None and now >= deadline):
                    break
                self._cond.wait(min(end, deadline if deadline is not None else end) - now)
            hello, failed = self._hello, self._failed
        if failed:
            return "failed"
        if hello:
            return "ok"
        if time.monotonic() < end:
            return "timeout"  # the caller's deadline, not the child's fault
        self._give_up(f"it did not answer within {START_TIMEOUT_S:.0f} s")
        return "failed"

    def _start(self) -> bool:
        """Start the child unless it runs already; ``False`` if given up on (now or before)
        or closed before it ever started."""
        spawn_error: Exception | None = None
        with self._cond:
            if self._failed or (self._closing and self._proc is None):
                return False
            if self._proc is None:
                try:
                    self._spawn()
                except Exception as exc:  # no child: the thread learner takes over
                    spawn_error = exc
        if spawn_error is not None:
            self._give_up(f"it could not start: {spawn_error!r}")
            return False
        return True

    def _spawn(self) -> None:
        """Start the child and the receiver thread (caller holds the condition's lock)."""
        self._proc, self._to_child, from_child = spawn_child(
            self.store_url, {LEARNER_ENV: "thread"}
        )
        self._receiver = threading.Thread(
            target=self._receive, args=(from_child,), name="hermes-learner-receiver", daemon=True
        )
        self._receiver.start()

    def _receive(self, sock: socket.socket) -> None:
        """Apply the child's messages until its end of stream (receiver thread)."""
        frames = FrameReceiver(sock)
        with sock:
            while True:
                try:
                    frame = frames.next()
                    message = None if frame is None else load_message(frame)
                except Exception as exc:  # a torn or foreign stream: the child is unusable
                    log.debug("hermes: bad message from the learner process: %r", exc)
                    message = None
                if message is None:
                    break
                self._apply(message)
        with self._cond:
            closing = self._closing
        if not closing:
            self._give_up("it exited")

    def _apply(self, message: dict[str, Any]) -> None:
        error = message.get("error")
        if error is not None:
            self._give_up(f"it failed: {error}")
            return
        graphs = message.get("graphs") or []
        try:
            if graphs:
                install_graphs(self.registry, graphs)
                self._installed = True
            if self._installed and "handled" in message:  # the counters end a status
                self._installed = False
                self.after_install(self.registry)  # rank tables: once per status
        except Exception as exc:  # hints keep the previous graphs; never break the app
            log.debug("hermes: installing the learner process's graphs failed: %r", exc)
        with self._cond:
            self._hello = True
            self.graph_installs += len(graphs)
            self.handled = int(message.get("handled", self.handled))
            self.completed = int(message.get("completed", self.completed))
            self.failed_runs = int(message.get("failed", self.failed_runs))
            self.child_rss_mib = float(message.get("rss_mib", self.child_rss_mib))
            self.child_peak_rss_mib = float(message.get("peak_rss_mib", self.child_peak_rss_mib))
            self.child_cpu_s = float(message.get("cpu_s", self.child_cpu_s))
            self._answered = max(self._answered, int(message.get("seq", 0)))
            self._cond.notify_all()

    def _give_up(self, reason: str) -> None:
        """Stop using the child (log once, count): later batches are learned in this process."""
        with self._cond:
            if self._failed:
                return
            self._failed = True
            lost = self.sent - self.handled
            self.lost += lost
            self.failures += 1
            self._cond.notify_all()
        with self._write_lock:
            fd, self._to_child = self._to_child, None
        if fd is not None:
            os.close(fd)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # alive but unusable (no hello, a torn stream): it must not write on
        log.warning(
            "hermes: the learner process is not used (%s); completed runs are stored and "
            "learned in this process from now on%s",
            reason,
            f" ({lost} runs sent to it were not confirmed stored)" if lost else "",
        )
        try:
            self.on_fallback()
        except Exception as exc:
            log.debug("hermes: switching to the thread learner failed: %r", exc)

    def _after_fork_in_child(self) -> None:
        """A forked app has no child of its own yet: drop the parent's pipe (never write to
        it), keep the graphs, start afresh at its first run."""
        fd = self._to_child
        self._init_state()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


_LIVE: weakref.WeakSet[ProcessLearner] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for learner in list(_LIVE):
        learner._after_fork_in_child()


def _close_all_at_exit() -> None:
    """Registered after the RunLearner's exit hook, so it runs first: it drains the queue
    into the pipe itself, then waits for the child's answer."""
    for learner in list(_LIVE):
        if learner._proc is not None and not learner._closing:
            try:
                learner.close()
            except Exception as exc:
                log.debug("hermes: closing the learner process at exit failed: %r", exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
