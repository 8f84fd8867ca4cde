"""A bench-only clairvoyant order for the hosted benchmark: runs ranked by their TRUE remaining
tokens (shortest remaining run first), read from the workload generator, not predicted.

It answers "is the gap to the target prediction or mechanics?": the gateway script swaps it in
for the budget's ranker (``hermes_oracle_run``), so it goes through the same gateway path as the
stage rank (the same admission queue, reservation and backfill, 429 handling). The waiting
stage's own tokens need no oracle in this benchmark: every call sets ``max_tokens`` to its true
output and its prompt is exactly 4 characters a token, so the stage rank's charge (prompt +
``max_tokens``) is already the true one.

A run's position is followed from its requests: a request of ``cost`` tokens waiting for
``node`` is in the first stage at or after the run's current one at that node with a call of
that cost. Its rank is ``(T_pending + T_after) / (TPM / 60)`` seconds: the tokens of the run's
requests waiting now plus those of every later stage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hosted_workload import Run

StageTokens = list[tuple[str, list[int]]]
"""A run's stages: (node, the provider tokens of each of its calls; empty for a tool step)."""


def dump_runs(runs: list[Run], path: Path) -> None:
    """Write what the oracle knows of each run (its stages' nodes and call tokens) to ``path``."""
    doc = {r.run_id: [(s.node, [i + o for i, o in s.calls]) for s in r.stages] for r in runs}
    path.write_text(json.dumps(doc))


class OracleRanker:
    """Ranks a budgeted upstream's waiters by their run's true remaining tokens (seconds)."""

    def __init__(self, runs: dict[str, StageTokens], tpm: float) -> None:
        self._runs = runs
        self._rate = tpm / 60.0
        self._at: dict[str, int] = {}
        """run_id -> index of the stage its requests wait in."""
        self._pending: dict[Hashable, float] = {}

    @classmethod
    def load(cls, path: Path, tpm: float) -> OracleRanker:
        return cls(json.loads(path.read_text()), tpm)

    def _advance(self, run_id: str, node: str, cost: float) -> None:
        stages = self._runs.get(run_id)
        if stages is None:
            return
        for i in range(self._at.get(run_id, 0), len(stages)):
            name, calls = stages[i]
            if name == node and any(c == cost for c in calls):
                self._at[run_id] = i
                return

    @contextmanager
    def queued(
        self, run_key: Hashable, app: str | None, node: str, cost: float = 0.0
    ) -> Iterator[None]:
        if isinstance(run_key, tuple):
            self._advance(str(run_key[1]), node, cost)
        self._pending[run_key] = self._pending.get(run_key, 0.0) + cost
        try:
            yield
        finally:
            left = self._pending[run_key] - cost
            if left <= 0.0:
                self._pending.pop(run_key, None)
            else:
                self._pending[run_key] = left

    def rank(self, run_key: Hashable | None, waited_s: float, cost: float) -> float:
        """Seconds of budget the run still needs: tokens waiting now + every later stage's."""
        if not isinstance(run_key, tuple):
            return math.inf
        run_id = str(run_key[1])
        stages = self._runs.get(run_id)
        if stages is None:
            return math.inf
        after = sum(sum(calls) for _, calls in stages[self._at.get(run_id, 0) + 1 :])
        return (max(self._pending.get(run_key, 0.0), cost) + after) / self._rate
