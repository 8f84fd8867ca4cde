"""What a paused run is: the record written to the store when a run pauses (a LangGraph
``interrupt()``), read back to resume it (:mod:`hermes_sdk.instrument.pauses`) or to end it as
abandoned (:mod:`hermes_sdk.instrument.paused_store`), and the key it is stored under.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Final

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import (
    Call,
    RunPath,
    Stage,
    UnitKind,
    path_from_dict,
    path_to_dict,
)

log = logging.getLogger("hermes_sdk.instrument")

PAUSED_NAMESPACE: Final = "paused_runs"
"""Store key/value namespace of paused runs (one document per resume key)."""
PROGRESS_NAMESPACE: Final = "run_progress"
"""Store key/value namespace of running runs' progress (durable execution; never swept)."""
DEFAULT_PAUSE_HORIZON_S: Final = 86_400.0
"""Paused runs not resumed within this many seconds (a day) are ended as abandoned."""


@dataclass(frozen=True, slots=True)
class CarriedCall:
    """A call of the step a run paused in: its service so far continues when the run resumes.

    ``task`` names the interrupted task (LangGraph: its checkpoint namespace ``"node:id"``);
    an empty ``task`` is a call of the same step that completed before the pause.
    """

    node: str
    kind: UnitKind
    backend: str | None
    call: Call
    task: str = ""


@dataclass(frozen=True, slots=True)
class PausedRun:
    """A run waiting to be resumed (times in seconds; ``*_at`` are unix seconds)."""

    app: str
    run_id: str
    tenant: str
    started_at: float
    deadline_s: float | None
    stages: tuple[Stage, ...]
    """Stages completed before the step that paused."""
    carried: tuple[CarriedCall, ...]
    """Calls of the step that paused (interrupted ones name their ``task``)."""
    paused_at: float
    paused_s: float
    """Seconds paused before this pause (earlier interrupts of the same run)."""
    active_s: float
    """Seconds the run was running (not paused) so far."""
    pauses: int = 1

    def waited_s(self, now: float) -> float:
        """Total seconds paused if the run resumed at unix time ``now``."""
        return self.paused_s + max(0.0, now - self.paused_at)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form for the store (inverse of :meth:`from_json`)."""
        prefix = RunPath(self.app, self.stages, self.run_id, self.tenant, self.started_at)
        return {
            "path": path_to_dict(prefix),
            "deadline_s": self.deadline_s,
            "carried": [
                {
                    "node": c.node,
                    "kind": c.kind,
                    "backend": c.backend,
                    "task": c.task,
                    "stage": path_to_dict(
                        RunPath(self.app, (Stage(c.node, (c.call,), c.kind, c.backend),))
                    )["stages"][0],
                }
                for c in self.carried
            ],
            "paused_at": self.paused_at,
            "paused_s": self.paused_s,
            "active_s": self.active_s,
            "pauses": self.pauses,
        }

    @staticmethod
    def from_json(raw: dict[str, Any]) -> PausedRun | None:
        """Parse a stored record; ``None`` for a tombstone or a corrupt record (logged)."""
        if "path" not in raw:
            return None
        try:
            prefix = path_from_dict(raw["path"])
            carried = []
            for item in raw.get("carried", []):
                wrapped = path_from_dict({"app": prefix.app, "stages": [item["stage"]]})
                stage = wrapped.stages[0]
                carried.append(
                    CarriedCall(stage.node, stage.kind, stage.backend, stage.calls[0], item["task"])
                )
            deadline = raw.get("deadline_s")
            return PausedRun(
                app=prefix.app,
                run_id=prefix.run_id,
                tenant=prefix.tenant,
                started_at=prefix.started_at,
                deadline_s=None if deadline is None else float(deadline),
                stages=prefix.stages,
                carried=tuple(carried),
                paused_at=float(raw["paused_at"]),
                paused_s=float(raw["paused_s"]),
                active_s=float(raw["active_s"]),
                pauses=int(raw.get("pauses", 1)),
            )
        except (GraphError, KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("hermes: ignoring corrupt paused run record: %s", exc)
            return None


def resume_key(*parts: str) -> str:
    """A store key for a paused run from what identifies it (any strings, any length)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:40]
