"""One Hermes run driven by one graph invocation: node tasks to units, step by step.

Superstep grouping: LangGraph runs the tasks of one superstep (``Send`` fan-out, parallel
branches) logically in parallel, but an executor may run them one after another. Hermes forms a
stage from units overlapping in time, so the unit of the last open task of a step is *held* open
until the next task starts: a task of the same step starts first and the held unit ends right
after it (they overlap: one stage), a task of a later step makes the held unit end first (no
overlap: a new stage). A held unit's service time thus includes the scheduling gap to the next
task, normally microseconds. A failed task is held until its step ends, so that a retry
(``RetryPolicy``: same ``checkpoint_ns``, same step) continues its unit: retries make that call
longer instead of adding calls to the stage.

Interrupts (see ``_threads``): a top-level run whose graph stopped at an interrupt is *paused*
when its root ends, not ended; the units of the interrupted step are carried, and the next
invocation on the same thread continues the run, the re-run task continuing its unit's service.

Node kinds: a node unit whose nested calls were all tool calls becomes a ``tool`` unit, all
retriever calls a ``retriever`` unit (LLM calls lend ``llm`` at stage formation); node metadata
``hermes_kind`` (and ``hermes_backend``) set them explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from hermes_sdk.graph.records import UnitKind
from hermes_sdk.instrument.paused_record import CarriedCall, PausedRun
from hermes_sdk.instrument.pauses import ProgressCache, continue_call, replay_carried

if TYPE_CHECKING:
    from hermes_sdk.instrument import RunHandle, UnitHandle


@dataclass(slots=True, eq=False)
class GraphRun:
    """One Hermes run driven by one graph invocation (the top-level one or a subgraph)."""

    handle: RunHandle
    top: TopRun
    outer_unit: UnitHandle | None = None
    open_by_step: dict[int, int] = field(default_factory=dict)
    held: list[Held] = field(default_factory=list)
    held_step: int = -1
    thread: str | None = None
    """Resume key of the LangGraph thread (top-level runs with a ``thread_id`` only)."""
    resumed: PausedRun | None = None
    carried: list[CarriedCall] = field(default_factory=list)
    """Calls of the step the run paused in, not yet continued by their re-run tasks."""
    carry_ns: int = 0
    step: int = -1
    step_units: list[tuple[UnitHandle, str]] = field(default_factory=list)
    """Node units (and task ids) of superstep ``step``, the latest one."""
    interrupted: set[str] = field(default_factory=set)
    """Task ids of the latest step that stopped at an interrupt."""
    pause_requested: bool = False
    inferred: dict[int, tuple[UnitHandle, set[str]]] = field(default_factory=dict)
    """Node units whose kind is inferred: id -> (unit, kinds of its nested calls)."""
    on_step: Callable[[GraphRun], None] | None = None
    """Called when a new superstep starts after another (records progress on the thread)."""
    checkpointed: bool = False
    progress: ProgressCache = field(default_factory=ProgressCache)

    def continue_carried(self, unit: UnitHandle, task_id: str) -> None:
        """A task starts after a resume: the interrupted task continues its unit, the calls of
        its step that completed before the pause rejoin its stage."""
        match = next((c for c in self.carried if c.task and c.task == task_id), None)
        if match is None:
            replay_carried(self.handle, self.carried, start_ns=self.carry_ns)
            self.carried.clear()
            return
        self.carried.remove(match)
        continue_call(unit, match)
        done = [c for c in self.carried if not c.task]
        if done:
            replay_carried(self.handle, done, start_ns=unit.start_ns)
            self.carried = [c for c in self.carried if c.task]

    def paused_step(self) -> list[tuple[UnitHandle, str]]:
        """The units to carry if the run pauses now: the latest step's, if a task of it was
        interrupted (an interrupt before or after a step carries nothing)."""
        if not self.interrupted:
            return []
        return [(u, t if t in self.interrupted else "") for u, t in self.step_units]

    def release_held(self) -> None:
        """End the held unit(s) now."""
        held, self.held = self.held, []
        for item in held:
            item.unit.end(item.failed)

    def start_node(
        self,
        name: str,
        step: int,
        task_id: str,
        kind: UnitKind | None = None,
        backend: str | None = None,
    ) -> UnitHandle:
        """Start the unit of a node task of superstep ``step`` (see module docstring).

        A retry of a failed task (same ``task_id``, same step) continues that task's unit, so
        retries add service time to one call instead of widening the stage.
        """
        if self.held and self.held_step != step:
            self.release_held()
        unit = None
        for i, item in enumerate(self.held):
            if item.failed and item.task_id == task_id and item.unit.name == name:
                unit = self.held.pop(i).unit
                break
        if unit is None:
            unit = self.handle.start_unit(name, kind=kind or "custom", backend=backend)
            if kind is None:
                self.inferred[id(unit)] = (unit, set())
            if self.carried:
                self.continue_carried(unit, task_id)
        if step != self.step:
            if self.on_step is not None and self.step >= 0:
                self.on_step(self)
            self.step, self.step_units = step, []
            self.interrupted.clear()
        self.step_units.append((unit, task_id))
        if self.held:
            # the new task overlaps the held ones now; failed ones wait for a retry or the step end
            keep = [item for item in self.held if item.failed]
            for item in self.held:
                if not item.failed:
                    item.unit.end(False)
            self.held = keep
        self.open_by_step[step] = self.open_by_step.get(step, 0) + 1
        return unit

    def end_node(
        self, unit: UnitHandle, step: int, failed: bool, task_id: str, interrupted: bool = False
    ) -> None:
        """End a node task's unit, or hold it: the last open task of its step, or a failed task
        (it may be retried)."""
        if interrupted:
            self.interrupted.add(task_id)
        inferred = self.inferred.pop(id(unit), None)
        if inferred is not None and len(inferred[1]) == 1:
            (only,) = inferred[1]
            if only in ("tool", "retriever"):
                unit.kind = "tool" if only == "tool" else "retriever"
        remaining = self.open_by_step.get(step, 0) - 1
        if remaining > 0:
            self.open_by_step[step] = remaining
        else:
            self.open_by_step.pop(step, None)
        if remaining > 0 and not failed:
            unit.end(failed)
            return
        self.held.append(Held(unit, failed, task_id))
        self.held_step = step


@dataclass(frozen=True, slots=True)
class Held:
    """A node unit whose end is deferred (see :meth:`GraphRun.end_node`)."""

    unit: UnitHandle
    failed: bool
    task_id: str


@dataclass(slots=True, eq=False)
class TopRun:
    """Bookkeeping of one top-level invocation: run ids to forget and sub-runs to close."""

    run_ids: list[UUID] = field(default_factory=list)
    subruns: list[GraphRun] = field(default_factory=list)
