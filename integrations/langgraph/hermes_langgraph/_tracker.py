"""From LangChain callback run trees to Hermes runs and units, for many concurrent invokes.

Every LangChain callback carries ``run_id`` and ``parent_run_id``; the tracker remembers each open
run id as an :class:`_Entry` that says which Hermes run it belongs to and which unit its children
nest under. A run id whose parent is unknown (``None`` for a top-level ``invoke``) starts a Hermes
run. Node tasks of a graph (see :func:`~hermes_langgraph._metadata.node_task`) directly under the
graph's root chain are the top-level units (the stages); LLM, tool and retriever calls are units
nested under the enclosing unit. A graph started inside a node (a subgraph) becomes a sub-run of
app ``"<app>/<node>"`` and its token totals are added to the node's unit.

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

import contextvars
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal
from uuid import UUID

from hermes_langgraph._metadata import explicit_backend, explicit_kind, node_task
from hermes_langgraph._threads import PausedThreads, continues_thread, thread_key
from hermes_sdk.graph.records import RunPath, UnitKind
from hermes_sdk.instrument import start_run
from hermes_sdk.instrument.pauses import (
    CarriedCall,
    PausedRun,
    continue_call,
    pause_run,
    replay_carried,
    resume_run,
)

if TYPE_CHECKING:
    from hermes_sdk.instrument import RunHandle, UnitHandle

Role = Literal["root", "subgraph", "node", "chain", "call"]

MAX_OPEN_RUNS: Final = 10_000
"""Top-level runs tracked at once; beyond this the oldest is ended as failed (abandoned)."""
MAX_IGNORED: Final = 100_000
"""Run ids remembered as ignored (after a handler failure) before the set is reset."""


@dataclass(slots=True, eq=False)
class GraphRun:
    """One Hermes run driven by one graph invocation (the top-level one or a subgraph)."""

    handle: RunHandle
    top: TopRun
    outer_unit: UnitHandle | None = None
    open_by_step: dict[int, int] = field(default_factory=dict)
    held: list[_Held] = field(default_factory=list)
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
        self.held.append(_Held(unit, failed, task_id))
        self.held_step = step


@dataclass(frozen=True, slots=True)
class _Held:
    """A node unit whose end is deferred (see :meth:`GraphRun.end_node`)."""

    unit: UnitHandle
    failed: bool
    task_id: str


@dataclass(slots=True, eq=False)
class TopRun:
    """Bookkeeping of one top-level invocation: run ids to forget and sub-runs to close."""

    run_ids: list[UUID] = field(default_factory=list)
    subruns: list[GraphRun] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Entry:
    """What the tracker remembers about one open LangChain run id."""

    role: Role
    graph: GraphRun
    unit: UnitHandle | None = None
    scope: UnitHandle | None = None
    step: int = 0
    task_id: str = ""
    hint_token: contextvars.Token[UnitHandle | None] | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """A Hermes run that a callback finished; the handler ends (or pauses) it outside the lock."""

    graph: GraphRun
    failed: bool
    pause: bool = False


class RunTracker:
    """Maps callback events to Hermes handles; all methods are thread-safe and O(1)."""

    def __init__(
        self,
        app: str,
        *,
        deadline_s: float | None,
        tenant: str | None,
        threads: PausedThreads | None = None,
    ) -> None:
        self.app = app
        self.deadline_s = deadline_s
        self.tenant = tenant
        self.threads = threads
        self._lock = threading.Lock()
        self._entries: dict[UUID, _Entry] = {}
        self._tops: dict[UUID, GraphRun] = {}
        self._ignored: set[UUID] = set()

    @property
    def open_runs(self) -> int:
        """Top-level runs started and not yet ended."""
        return len(self._tops)

    @property
    def open_entries(self) -> int:
        """LangChain run ids currently remembered (for leak checks)."""
        return len(self._entries)

    def ignore(self, run_id: UUID) -> None:
        """Forget ``run_id`` and ignore its whole subtree (its start hook failed half-way).

        Without this, the children of a root whose start failed would each look like a new
        top-level run.
        """
        with self._lock:
            self._entries.pop(run_id, None)
            top = self._tops.pop(run_id, None)
            if top is not None:  # drop (never end) a run whose own start failed half-way
                for rid in top.top.run_ids:
                    self._entries.pop(rid, None)
            if len(self._ignored) >= MAX_IGNORED:
                self._ignored.clear()
            self._ignored.add(run_id)

    def _skip(self, run_id: UUID, parent_run_id: UUID | None) -> bool:
        """Whether a starting run belongs to an ignored subtree (and remember it if so)."""
        if parent_run_id is not None and parent_run_id in self._ignored:
            self._ignored.add(run_id)
            return True
        return False

    # --- starting -------------------------------------------------------------------------

    def _new_top(
        self, run_id: UUID, thread: str | None = None, inputs: object = None
    ) -> tuple[GraphRun, list[Ended]]:
        paused = None
        if thread is not None and self.threads is not None:
            if continues_thread(inputs):
                paused = self.threads.take(thread)
            else:
                self.threads.restart(thread)
        if paused is not None:
            handle, carry_ns = resume_run(paused)
            graph = GraphRun(handle=handle, top=TopRun(), thread=thread, resumed=paused)
            graph.carried, graph.carry_ns = list(paused.carried), carry_ns
        else:
            handle = start_run(
                self.app, deadline_s=self.deadline_s, tenant=self.tenant, run_id=str(run_id)
            )
            graph = GraphRun(handle=handle, top=TopRun(), thread=thread)
        evicted: list[Ended] = []
        if len(self._tops) >= MAX_OPEN_RUNS:
            oldest = next(iter(self._tops))
            evicted.extend(self._forget_top(oldest, failed=True))
        self._tops[run_id] = graph
        return graph, evicted

    def _remember(self, run_id: UUID, entry: _Entry) -> None:
        self._entries[run_id] = entry
        entry.graph.top.run_ids.append(run_id)

    def chain_start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, object] | None,
        tags: Sequence[str] | None,
        inputs: object = None,
    ) -> list[Ended]:
        """A chain (graph, node task, edge, lambda, ...) started."""
        with self._lock:
            if self._ignored and self._skip(run_id, parent_run_id):
                return []
            parent = self._entries.get(parent_run_id) if parent_run_id is not None else None
            if parent is None or parent_run_id is None:
                thread = thread_key(self.app, self.tenant, metadata)
                graph, evicted = self._new_top(run_id, thread, inputs)
                self._remember(run_id, _Entry("root", graph))
                return evicted
            task = node_task(metadata, tags)
            if task is not None and parent.role == "chain" and parent.scope is not None:
                self._promote_to_subgraph(parent, parent_run_id)
            if task is not None and parent.role in ("root", "subgraph"):
                unit = parent.graph.start_node(
                    task.node,
                    task.step,
                    task.task_id,
                    explicit_kind(metadata),
                    explicit_backend(metadata),
                )
                self._remember(
                    run_id, _Entry("node", parent.graph, unit, unit, task.step, task.task_id)
                )
            else:
                self._remember(run_id, _Entry("chain", parent.graph, None, parent.scope))
            return []

    def _promote_to_subgraph(self, entry: _Entry, run_id: UUID) -> None:
        """A chain inside a unit turned out to run a graph: record that graph as a sub-run."""
        outer = entry.scope
        assert outer is not None
        app = f"{entry.graph.handle.app}/{outer.name}"
        # An empty context: the sub-run must not also become a unit of a decorator run that
        # happens to be current here (it is accounted for through ``outer`` instead).
        handle = contextvars.Context().run(
            start_run, app, deadline_s=None, tenant=entry.graph.handle.tenant, run_id=str(run_id)
        )
        entry.role = "subgraph"
        entry.graph = GraphRun(handle=handle, top=entry.graph.top, outer_unit=outer)
        entry.scope = None
        entry.graph.top.subruns.append(entry.graph)

    def call_start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        kind: UnitKind,
        backend: str | None,
        input_tokens: int | None,
    ) -> tuple[UnitHandle | None, list[Ended]]:
        """An LLM, chat model, tool or retriever call started: a unit nested in its scope."""
        with self._lock:
            if self._ignored and self._skip(run_id, parent_run_id):
                return None, []
            parent = self._entries.get(parent_run_id) if parent_run_id is not None else None
            evicted: list[Ended] = []
            if parent is None:
                graph, evicted = self._new_top(run_id)
                role: Role = "root"
                scope = None
            else:
                graph, role, scope = parent.graph, "call", parent.scope
                if scope is not None and graph.inferred:
                    inferred = graph.inferred.get(id(scope))
                    if inferred is not None:
                        inferred[1].add(kind)
            unit = graph.handle.start_unit(
                name, kind=kind, backend=backend, parent=scope, input_tokens=input_tokens
            )
            self._remember(run_id, _Entry(role, graph, unit, unit))
            return unit, evicted

    def set_hint_token(
        self, run_id: UUID, token: contextvars.Token[UnitHandle | None] | None
    ) -> None:
        """Remember the context-variable token to reset when the call ``run_id`` ends."""
        entry = self._entries.get(run_id)
        if entry is not None:
            entry.hint_token = token

    # --- ending ---------------------------------------------------------------------------

    def interrupt(self, run_id: UUID | None) -> None:
        """LangGraph reported that the top-level graph ``run_id`` stopped at an interrupt."""
        with self._lock:
            graph = self._tops.get(run_id) if run_id is not None else None
            if graph is not None:
                graph.pause_requested = True

    def end(
        self,
        run_id: UUID,
        *,
        failed: bool,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        interrupted: bool = False,
    ) -> tuple[list[Ended], contextvars.Token[UnitHandle | None] | None]:
        """Any run id ended (``interrupted``: by an interrupt); returns the Hermes runs to end
        and the hint token to reset."""
        with self._lock:
            entry = self._entries.pop(run_id, None)
            if entry is None:
                self._ignored.discard(run_id)
                return [], None
            ended: list[Ended] = []
            if entry.role == "node" and entry.unit is not None:
                entry.graph.end_node(entry.unit, entry.step, failed, entry.task_id, interrupted)
            elif entry.unit is not None:
                entry.unit.record(input_tokens=input_tokens, output_tokens=output_tokens)
                entry.unit.end(failed)
            if entry.role == "subgraph":
                entry.graph.release_held()
                entry.graph.top.subruns.remove(entry.graph)
                ended.append(Ended(entry.graph, failed))
            elif entry.role == "root":
                graph = entry.graph
                pause = (
                    not failed
                    and graph.thread is not None
                    and (graph.pause_requested or bool(graph.interrupted))
                )
                ended.extend(self._forget_top(run_id, failed, pause=pause))
            return ended, entry.hint_token

    def _forget_top(self, run_id: UUID, failed: bool, *, pause: bool = False) -> list[Ended]:
        """Drop a top-level run's entries; its unfinished sub-runs end (failed) before it."""
        graph = self._tops.pop(run_id)
        for rid in graph.top.run_ids:
            self._entries.pop(rid, None)
        ended = []
        for sub in reversed(graph.top.subruns):
            sub.release_held()
            ended.append(Ended(sub, True))
        graph.top.subruns.clear()
        graph.release_held()
        ended.append(Ended(graph, failed, pause))
        return ended

    def close_all(self) -> list[Ended]:
        """End every open run as failed (handler shutdown)."""
        with self._lock:
            return [e for rid in list(self._tops) for e in self._forget_top(rid, failed=True)]


def finish(ended: Ended, threads: PausedThreads | None = None) -> RunPath | None:
    """End a Hermes run (outside the tracker lock) and roll a sub-run's tokens into its node;
    a run that stopped at an interrupt is paused instead (``None``)."""
    graph = ended.graph
    if ended.pause and threads is not None and graph.thread is not None:
        if graph.carried:  # resumed and interrupted again before its tasks re-ran
            replay_carried(graph.handle, graph.carried, start_ns=graph.carry_ns)
            graph.carried = []
        paused = pause_run(graph.handle, graph.paused_step(), prior=graph.resumed)
        if paused is not None:
            threads.put(graph.thread, paused)
            return None
    elif graph.carried:
        replay_carried(graph.handle, graph.carried, start_ns=graph.carry_ns)
        graph.carried = []
    path = graph.handle.end(failed=ended.failed)
    outer = ended.graph.outer_unit
    if outer is not None and path is not None:
        inp = [c.input_tokens for s in path.stages for c in s.calls if c.input_tokens is not None]
        out = [c.output_tokens for s in path.stages for c in s.calls if c.output_tokens is not None]
        if inp:
            outer.record(input_tokens=(outer.input_tokens or 0) + sum(inp))
        if out:
            outer.record(output_tokens=(outer.output_tokens or 0) + sum(out))
    return path
