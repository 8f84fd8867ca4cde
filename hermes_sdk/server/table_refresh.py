"""Rank-table rebuilds paid for by learning and run between requests (the scheduler's part of
the staleness rule in docs/theory.md 6b: lookups past the hard bound still rebuild inline)."""

from __future__ import annotations

import asyncio
import logging

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.rank_tables import RankTables

log = logging.getLogger("hermes_sdk.server")

REFRESH_BUDGET = 2
"""Rank tables rebuilt per learned batch of paths (each takes about a millisecond)."""
REFRESH_STEP_S = 0.0003
"""Seconds of rebuild steps per event-loop turn (a step is ~0.05-0.2 ms; at least one runs).
``math.inf``: a whole table per turn, as before the steps."""
MAX_REFRESH_CREDIT = 64
"""Rebuilds the learned batches may have paid for and the task not done yet (a backlog)."""


class TableRefresher:
    """The rebuilds of ``registry``'s rank tables that learned batches paid for."""

    def __init__(self, registry: GraphRegistry) -> None:
        self.registry = registry
        self.task: asyncio.Task[None] | None = None
        """The task rebuilding due rank tables between requests (see :meth:`soon`)."""
        self.credit = 0
        """Tables the learned batches paid for and the task has not rebuilt yet."""

    def soon(self) -> None:
        """After learning on the event loop: the batch pays for REFRESH_BUDGET due rank tables,
        rebuilt by a task a few steps per loop turn (:meth:`RankTables.refresh_step`: one Monte
        Carlo walk or grid point each, at most REFRESH_STEP_S per turn), so requests are served
        between the steps of a rebuild; lookups meanwhile read the old table."""
        tables = self.registry.rank_tables
        if tables is None:
            return
        self.credit = min(self.credit + REFRESH_BUDGET, MAX_REFRESH_CREDIT)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._rebuild(tables))

    async def _rebuild(self, tables: RankTables) -> None:
        try:
            while self.credit > 0:
                built, more = tables.refresh_step(REFRESH_STEP_S)
                self.credit -= built
                if not more:
                    self.credit = 0  # nothing due: no credit is carried over
                    break
                await asyncio.sleep(0)
        except Exception:  # a rebuild bug must not stop serving: lookups rebuild past the bound
            log.exception("rank table refresh failed")

    def now(self) -> None:
        """After learning off the loop: rebuild a few rank tables that fell due (the learning
        step pays for them, not the events that rank)."""
        tables = self.registry.rank_tables
        if tables is not None:
            tables.refresh(REFRESH_BUDGET)  # (finds the due ones itself)

    def close(self) -> None:
        """Stop the rebuilding task, if any."""
        if self.task is not None:
            self.task.cancel()
