"""The instrumentation's counters as one immutable record (``hermes.stats()``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InstrumentStats:
    """Counters of the instrumentation since :func:`configure` (events and runs)."""

    runs_completed: int
    runs_failed_to_record: int
    events_queued: int
    events_sent: int
    events_dropped: int
    events_lost: int
    send_errors: int
    runs_dropped: int = 0
    """Of ``runs_failed_to_record``: refused at the queue of completed runs, because it was full
    or (``runs_unencodable`` of them) because the run could not be encoded for it."""
    runs_unencodable: int = 0
    """Of ``runs_dropped``: runs ``marshal`` could not encode for the learner process (a value
    it refuses, e.g. a ``str`` subclass as a name; ``learner="process"`` only)."""
    runs_pending: int = 0
    """Completed runs waiting for the store right now (0 after a successful sync)."""
    pending_bytes: int = 0
    """Estimated bytes those pending runs hold."""
    peak_pending_bytes: int = 0
    """The most the queue of completed runs ever held (estimated bytes)."""
    max_pending_bytes: int = 0
    """The queue's bound (``HERMES_LEARN_QUEUE_MIB`` / ``configure(learn_queue_bytes=)``)."""
    learn_backpressure_sleeps: int = 0
    """Sleeps (200 us each) that ending a run made to let the learner catch up (backpressure on)."""
    learner_process_failures: int = 0
    """Learner processes that could not start or died (``learner="process"``; each time the
    thread learner took over)."""
    runs_lost_in_learner_process: int = 0
    """Of ``runs_failed_to_record``: runs sent to a learner process that died before it
    confirmed storing them."""
