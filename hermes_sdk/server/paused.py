"""Paused runs on the scheduler: kept across restarts, shown apart, abandoned after a horizon.

A run paused by ``run_pause`` (a LangGraph interrupt waiting for a person) is written through to
the store's key/value space, whatever the store, so a restarted scheduler still knows it when the
app resumes it (``run_start`` with the same run id). It holds no rank and waits in no queue; the
dashboard and ``/metrics`` list it as paused. A run paused longer than ``pause_horizon_s`` is
dropped as abandoned (the client that paused it ends and learns it, see
``hermes_sdk.instrument.pauses``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Final

from hermes_sdk.server.runs import TrackedRun
from hermes_sdk.store import Store

log = logging.getLogger("hermes_sdk.server")

PAUSED_NAMESPACE: Final = "scheduler_paused_runs"
"""Store key/value namespace of the scheduler's paused runs (one document per run)."""


@dataclass(frozen=True, slots=True)
class PausedView:
    """Read-only snapshot of one paused run (seconds; ``paused_for_s``: the current pause)."""

    tenant: str
    run_id: str
    app: str
    node: str
    attained_s: float
    paused_for_s: float
    paused_s: float
    """Seconds paused in earlier, completed pauses of the same run."""


def paused_view(run: TrackedRun, now_s: float) -> PausedView:
    """The view of a paused run at ``now_s`` (server unix seconds)."""
    return PausedView(
        run.tenant,
        run.run_id,
        run.app,
        run.node,
        run.attained_s,
        run.paused_for_s(now_s),
        run.paused_s,
    )


def _key(tenant: str, run_id: str) -> str:
    return hashlib.sha256(f"{tenant}\x1f{run_id}".encode()).hexdigest()[:40]


class PausedRunStore:
    """Write-through of paused runs to the store; failures are logged, never raised."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, run: TrackedRun) -> None:
        """Remember ``run`` as paused (durably when the store is)."""
        try:
            self.store.put_json(PAUSED_NAMESPACE, _key(run.tenant, run.run_id), run.to_json())
        except Exception as exc:
            log.warning("could not store paused run %s: %r", run.run_id, exc)

    def forget(self, run: TrackedRun) -> None:
        """``run`` resumed or ended: it is no longer paused."""
        try:
            self.store.put_json(PAUSED_NAMESPACE, _key(run.tenant, run.run_id), {"ended": True})
        except Exception as exc:
            log.warning("could not update paused run %s: %r", run.run_id, exc)

    def load(self) -> list[TrackedRun]:
        """Every run stored as paused (at start-up)."""
        runs = []
        try:
            for key in self.store.list_keys(PAUSED_NAMESPACE):
                raw = self.store.get_json(PAUSED_NAMESPACE, key)
                run = TrackedRun.from_json(raw) if raw is not None else None
                if run is not None and run.paused:
                    runs.append(run)
        except Exception as exc:
            log.warning("could not load paused runs: %r", exc)
        return runs
