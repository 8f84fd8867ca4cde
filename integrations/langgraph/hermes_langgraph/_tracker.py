"""From LangChain callback run trees to Hermes runs and units, for many concurrent invokes.

Every LangChain callback carries ``run_id`` and ``parent_run_id``; the tracker remembers each open
run id as an :class:`_Entry` that says which Hermes run it belongs to and which unit its children
nest under. A run id whose parent is unknown (``None`` for a top-level ``invoke``) starts a Hermes
run. Node tasks of a graph (see :func:`~hermes_langgraph._metadata.node_task`) directly under the
graph's root chain are the top-level units (the stages); LLM, tool and retriever calls are units
nested under the enclosing unit. A graph started inside a node (a subgraph) becomes a sub-run of
app ``"<app>/<node>"`` and its token totals are added to the node's unit.

How node tasks become stages (supersteps, retries, interrupts, kinds) is in ``_graph_run``.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal
from uuid import UUID

from hermes_langgraph._graph_run import GraphRun, TopRun
from hermes_langgraph._metadata import explicit_backend, explicit_kind, node_task
from hermes_langgraph._threads import PausedThreads, continues_thread, thread_key
from hermes_sdk.graph.records import RunPath, UnitKind
from hermes_sdk.instrument import start_run
from hermes_sdk.instrument.paused_record import resume_key
from hermes_sdk.instrument.pauses import pause_run, replay_carried, resume_run, snapshot_run

if TYPE_CHECKING:
    from hermes_sdk.instrument import UnitHandle

Role = Literal["root", "subgraph", "node", "chain", "call"]

MAX_OPEN_RUNS: Final = 10_000
"""Top-level runs tracked at once; beyond this the oldest is ended as failed (abandoned)."""
MAX_IGNORED: Final = 100_000
"""Run ids remembered as ignored (after a handler failure) before the set is reset."""


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
        if thread is not None and self.threads is not None:
            graph.on_step = self._checkpoint
        evicted: list[Ended] = []
        if len(self._tops) >= MAX_OPEN_RUNS:
            oldest = next(iter(self._tops))
            evicted.extend(self._forget_top(oldest, failed=True))
        self._tops[run_id] = graph
        return graph, evicted

    def _checkpoint(self, graph: GraphRun) -> None:
        """Record a threaded run's progress at a superstep boundary (durable execution)."""
        progress = snapshot_run(graph.handle, prior=graph.resumed, cache=graph.progress)
        if progress is not None and self.threads is not None and graph.thread is not None:
            self.threads.checkpoint(graph.thread, progress)
            graph.checkpointed = True

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
                self._remember(
                    run_id,
                    _Entry("chain", parent.graph, None, parent.scope, parent.step, parent.task_id),
                )
            return []

    def _promote_to_subgraph(self, entry: _Entry, run_id: UUID) -> None:
        """A chain inside a unit turned out to run a graph: record that graph as a sub-run."""
        outer = entry.scope
        assert outer is not None
        parent = entry.graph
        app = f"{parent.handle.app}/{outer.name}"
        # A subgraph interrupted inside a paused run pauses too, keyed by the node task that
        # runs it (the same task id when the parent's resume re-runs that task).
        thread = resume_key(parent.thread, entry.task_id) if parent.thread else None
        paused = None
        if thread is not None and parent.resumed is not None and self.threads is not None:
            paused = self.threads.take(thread)
        # An empty context: the sub-run must not also become a unit of a decorator run that
        # happens to be current here (it is accounted for through ``outer`` instead).
        carry_ns = 0
        if paused is not None:
            handle, carry_ns = contextvars.Context().run(resume_run, paused)
        else:
            handle = contextvars.Context().run(
                start_run, app, deadline_s=None, tenant=parent.handle.tenant, run_id=str(run_id)
            )
        entry.role = "subgraph"
        entry.graph = GraphRun(
            handle=handle, top=parent.top, outer_unit=outer, thread=thread, resumed=paused
        )
        if paused is not None:
            entry.graph.carried, entry.graph.carry_ns = list(paused.carried), carry_ns
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
                pause = interrupted and entry.graph.thread is not None
                ended.append(Ended(entry.graph, failed, pause))
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
    if graph.checkpointed and threads is not None and graph.thread is not None:
        threads.forget(graph.thread)
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
