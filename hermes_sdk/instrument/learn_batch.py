"""Storing and learning one batch of completed runs: the one implementation behind the thread
learner (:meth:`Runtime.learn_many`) and the learner process (``learner_child``).

Kept apart from :mod:`hermes_sdk.instrument.runtime` so the learner process imports only what
it runs (the store, the graphs, numpy), not the instrumentation, the client or the recorder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hermes_sdk.graph.records import RunPath
from hermes_sdk.graph.registry import GraphRegistry

log = logging.getLogger("hermes_sdk.instrument")

STORE_WARN_INTERVAL_S: Final = 60.0
"""Least seconds between two warnings about failed store writes."""


@dataclass
class LearnTally:
    """Runs stored and learned (``completed``) and refused or not stored (``failed``) by
    :func:`learn_batch`; ``last_store_warn`` is the monotonic second of its last warning."""

    completed: int = 0
    failed: int = 0
    last_store_warn: float = -float("inf")


def learn_batch(
    registry_of: Callable[[], GraphRegistry],
    paths: list[RunPath],
    tally: LearnTally,
    after_learn: Callable[[GraphRegistry], None] | None = None,
) -> None:
    """Store ``paths`` in one batch write, then learn them; never raises.

    ``registry_of`` opens (or returns) the registry; if that or the store write fails the whole
    batch counts as failed (warned about at most once per ``STORE_WARN_INTERVAL_S``). A path its
    graph rejects is counted as failed and warned about. Then ``after_learn(registry)`` runs
    (the thread learner refreshes due rank tables there, off the app's path; the learner process
    keeps none: the app ranks with the graphs it installs).
    """
    try:
        registry = registry_of()
        rejected = registry.observe_many(paths)
    except Exception as exc:
        tally.failed += len(paths)
        now = time.monotonic()
        if now - tally.last_store_warn >= STORE_WARN_INTERVAL_S:
            tally.last_store_warn = now
            log.warning(
                "hermes: could not store %d completed runs (%d failed so far): %r",
                len(paths),
                tally.failed,
                exc,
            )
        return
    for path, error in rejected:
        log.warning("hermes: run %s of %s not recorded: %s", path.run_id, path.app, error)
    tally.failed += len(rejected)
    tally.completed += len(paths) - len(rejected)
    if after_learn is not None:
        after_learn(registry)
