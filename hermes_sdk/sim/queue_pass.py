"""The simulator's call site of the queue-wide deadline pass (``policy.deadline_queue``).

Before an engine fills or preempts its slots, the runs it holds (running and waiting, one entry per
run) are reordered by :func:`~hermes_sdk.policy.deadline_queue.feasibility_keys` on the inputs the
policy gave at each run's last rank (``work_s``, ``start_by_s``); the new keys stand until the run's
next rank or the next pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from hermes_sdk.policy.deadline_queue import feasibility_keys


class QueuedRun(Protocol):
    """What the pass reads and writes on a simulated run
    (:class:`~hermes_sdk.sim.sim_types.SimApp`)."""

    key: float
    """Queue key (the policy's rank, seconds; lower first)."""
    version: int
    """Bumped whenever ``key`` changes (the queues' stale-entry check)."""
    arrival_s: float
    work_s: float
    """Predicted remaining service, seconds."""
    start_by_s: float
    """Latest start that still makes the deadline (absolute seconds), NaN if none."""


def reorder_runs(runs: Sequence[QueuedRun], now_s: float, capacity: float) -> bool:
    """Apply the pass to ``runs`` (each once) at ``now_s`` on an engine serving ``capacity``
    service-seconds per second; True if any key changed (the caller then re-heaps its queue)."""
    if not any(not math.isnan(r.start_by_s) for r in runs):
        return False
    ordered = sorted(runs, key=lambda r: (r.key, r.arrival_s))
    keys = feasibility_keys(
        [r.key for r in ordered],
        [r.work_s for r in ordered],
        np.array([r.start_by_s for r in ordered]) - now_s,
        capacity=capacity,
    ).tolist()
    changed = False
    for run, key in zip(ordered, keys, strict=True):
        if key != run.key:
            run.key = key
            run.version += 1
            changed = True
    return changed
