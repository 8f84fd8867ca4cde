"""The learner process: ``python -m hermes_sdk.instrument.learner_child IN_FD OUT_FD``.

Started by :class:`~hermes_sdk.instrument.learner_process.ProcessLearner`, which passes the store
URL in ``HERMES_LEARNER_CHILD_STORE`` (never on the command line: it may hold a password). It
opens the store
(replaying what it holds), says hello, then handles the app's frames in order: a batch of runs is
stored and learned by the same code as the thread learner (:func:`learn_batch`: one store
transaction, batch learning; no rank tables here: the app ranks with the graphs it installs); a
sync request is answered after everything
before it. Each answer, and at most every ``STATUS_INTERVAL_S`` while batches arrive, is every
graph that learned since the last one (a frame each), then the counters. At the end of the
app's stream (a clean close, or the app's death: then a torn last frame is dropped whole) it
closes the store and exits. It ignores SIGINT: a Ctrl-C of the app's terminal must not cut a
write short; the app's end of the pipe ends it.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import resource
import signal
import sys
import threading
import time
from typing import Any

from hermes_sdk.graph.registry import GraphRegistry
from hermes_sdk.instrument.learn_batch import LearnTally, learn_batch
from hermes_sdk.instrument.learner_frames import FrameReader, write_frame
from hermes_sdk.instrument.learner_spawn import CHILD_STORE_ENV
from hermes_sdk.instrument.learner_wire import (
    FRAME_MAX_RUNS,
    RUNS,
    STATUS_INTERVAL_S,
    SYNC,
    changed_graphs,
    decode_runs,
    dump_message,
    sync_seq,
)
from hermes_sdk.store import open_store

log = logging.getLogger("hermes_sdk.instrument")

MERGE_MAX_RUNS = FRAME_MAX_RUNS
"""Most runs merged into one learned batch when several frames wait in the pipe (the child's
peak memory: see ``FRAME_MAX_RUNS``)."""
MERGE_LINGER_S = 0.1
"""Longest wait, from a batch's first frame, for more runs to join it (up to ``MERGE_MAX_RUNS``;
a sync request or the end of the stream ends the wait). A child that keeps up otherwise learns
the app's small frames in small batches, each paying the per-batch costs (a transaction, a
learn per graph): ~145 us of CPU per run in a soak against ~112 us in 1,000-run batches.
Hints lag by at most this more (statuses go every ``STATUS_INTERVAL_S`` anyway)."""
GC_GEN0_THRESHOLD = 50_000
"""Allocations between two young collections here (CPython's default 700): a batch allocates
~30 objects per run, none of them in cycles, and the default made decoding 3x slower."""


def _rss_mib() -> tuple[float, float]:
    """(resident, peak resident) MiB of this process: ``VmRSS`` and ``VmHWM`` (Linux). Not
    ``ru_maxrss``: Linux carries it across ``exec``, so a child spawned by an app of 300 MiB
    reports a peak of 300 MiB from its first moment (its own ``VmHWM``: ~9 MiB)."""
    found: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    found[line[:5]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = found.get("VmRSS", 0.0)
    peak = found.get("VmHWM")
    if peak is None:  # no /proc: the inherited figure is all there is
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rss, max(peak, rss)


class StatusWriter:
    """Writes the child's status frames to the app on a thread of its own: a write blocks until
    the app's receiver thread reads it (that thread competes for the app's GIL, ~20 ms a frame in
    a CPU-bound soak: 16% of the child's time when written inline), and learning must not wait
    for it. A periodic status is skipped while the previous one is still being written (its
    graphs go in the next); a sync's answer always goes, after everything put before it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.app_reads = True
        self._queue: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting = 0
        self._thread = threading.Thread(target=self._run, name="hermes-learner-status", daemon=True)
        self._thread.start()

    def busy(self) -> bool:
        """Whether a status put earlier is not written yet."""
        with self._lock:
            return self._waiting > 0

    def put(self, frames: list[bytes]) -> None:
        """Write ``frames`` in order after those put before (on the writer thread)."""
        with self._lock:
            self._waiting += 1
        self._queue.put(frames)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (unless the app is gone), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while (frames := self._queue.get()) is not None:
            try:
                if self.app_reads:
                    for frame in frames:
                        write_frame(self.fd, frame)
            except OSError:  # the app is gone: store what is still in the pipe, quietly
                self.app_reads = False
            finally:
                with self._lock:
                    self._waiting -= 1


def serve(fd_in: int, fd_out: int, store_url: str) -> int:
    """Handle the app's frames until its end of stream; the process's exit status."""
    tally = LearnTally()
    opened: list[GraphRegistry] = []

    def registry() -> GraphRegistry:
        # no rank tables here: the app ranks with the graphs it installs (and refreshes its own)
        if not opened:
            opened.append(GraphRegistry(open_store(store_url), rank_tables=None))
        return opened[0]

    counters: dict[str, Any] = {"handled": 0}
    sent_versions: dict[tuple[str, str], int] = {}
    writer: StatusWriter | None = None

    def status(seq: int) -> None:
        if writer is None or not writer.app_reads or (seq == 0 and writer.busy()):
            return
        # one frame per changed graph, then the counters: the app unpickles and installs one
        # graph at a time, never a second copy of every graph at once
        frames = [
            dump_message({"graphs": [graph]}) for graph in changed_graphs(registry(), sent_versions)
        ]
        rss, peak = _rss_mib()
        message = {
            **counters,
            "seq": seq,
            "completed": tally.completed,
            "failed": tally.failed,
            "rss_mib": rss,
            "peak_rss_mib": peak,
            "cpu_s": time.process_time(),
        }
        frames.append(dump_message(message))
        writer.put(frames)

    write_frame(fd_out, dump_message({"hello": True, "pid": os.getpid()}))
    try:
        registry()  # open the store and replay it before the first batch
    except Exception as exc:
        write_frame(fd_out, dump_message({"error": repr(exc)}))
        return 1
    gc.freeze()  # the replayed graphs are long-lived: keep them out of every collection
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)
    writer = StatusWriter(fd_out)
    status(0)
    last = time.monotonic()
    frames = FrameReader(fd_in)
    pending: bytes | None = None
    while True:
        frame = pending if pending is not None else frames.next()
        pending = None
        if frame is None:
            break
        if frame[:1] == RUNS:
            # every batch already waiting joins this one: one transaction, one learn (the
            # learner thread's group commit, across the pipe)
            paths = decode_runs(memoryview(frame)[1:])  # no copy of the frame
            linger_end = time.monotonic() + MERGE_LINGER_S
            while len(paths) < MERGE_MAX_RUNS:
                more = frames.next(block=False, wait_s=linger_end - time.monotonic())
                if more is None:
                    break
                if more[:1] != RUNS:
                    pending = more  # a sync answers after the runs before it
                    break
                paths += decode_runs(memoryview(more)[1:])
            learn_batch(registry, paths, tally)
            counters["handled"] += len(paths)
            if time.monotonic() - last >= STATUS_INTERVAL_S:
                status(0)
                last = time.monotonic()
        elif frame[:1] == SYNC:
            status(sync_seq(frame))
            last = time.monotonic()
    os.close(fd_in)
    registry().close()
    writer.close()
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``IN_FD OUT_FD``, the store URL in ``HERMES_LEARNER_CHILD_STORE``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd_in, fd_out = int(argv[0]), int(argv[1])
    store_url = os.environ.pop(CHILD_STORE_ENV)
    try:
        return serve(fd_in, fd_out, store_url)
    except BrokenPipeError:
        return 0  # the app is gone and does not read any more: what was stored stays stored


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
