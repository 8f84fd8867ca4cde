"""Runs that pause and resume: one run across the invocations of a human-in-the-loop app.

A run that stops to wait for a person or an event (a LangGraph ``interrupt()``) is *paused*, not
ended: :func:`pause_run` turns its handle into a :class:`PausedRun` (the stages completed so far,
plus the calls of the interrupted step, which the resumed step continues) and writes it to the
store's key/value space under a *resume key* the caller derives from what identifies the paused
work (for LangGraph: app, tenant, ``thread_id`` and checkpoint namespace). Any process sharing
that store can :func:`take_paused` it and :func:`resume_run` it: a new handle with the same run
id, its completed stages replayed as finished units (no events, no observers) so the path that
ends is the whole run. The time between pause and resume is counted in ``paused_s``, never as
service, latency or elapsed run time (deadlines are relative to active time).

A paused run that is not resumed within a horizon is ended as *abandoned* by
:func:`abandon_paused` / :func:`sweep_abandoned`: learned like a failed run, up to where it got.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from time import perf_counter_ns
from typing import Any, Final

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import (
    MAX_SERVICE_S,
    Call,
    RunPath,
    Stage,
    UnitKind,
    path_from_dict,
    path_to_dict,
)
from hermes_sdk.instrument import handles as _handles
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.stages import NS_PER_S, composite_name, form_stages
from hermes_sdk.store import Store

log = logging.getLogger("hermes_sdk.instrument")

PAUSED_NAMESPACE: Final = "paused_runs"
"""Store key/value namespace of paused runs (one document per resume key)."""
PROGRESS_NAMESPACE: Final = "run_progress"
"""Store key/value namespace of running runs' progress (durable execution; never swept)."""
DEFAULT_PAUSE_HORIZON_S: Final = 86_400.0
"""Paused runs not resumed within this many seconds (a day) are ended as abandoned."""
_GAP_NS: Final = 1_000
"""Gap between replayed stages so they never overlap (stage formation groups overlaps)."""


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


def paused_store() -> Store | None:
    """The store paused runs go to: the active configuration's registry store (embedded: the
    configured store; remote mode: in-memory unless ``store=`` is given). ``None`` if disabled
    or unusable (logged)."""
    runtime = _rt.RUNTIME
    if not runtime.enabled:
        return None
    try:
        return runtime.registry().store
    except Exception as exc:
        log.warning("hermes: no store for paused runs: %r", exc)
        return None


def _subtree(units: Sequence[UnitHandle], root: UnitHandle) -> list[UnitHandle]:
    return [u for u in units if u.root is root]


def _describe(
    handle: RunHandle,
    carried: Sequence[tuple[UnitHandle, str]],
    prior: PausedRun | None,
    now: float,
    end_ns: int,
) -> PausedRun | None:
    """``handle`` as a :class:`PausedRun` at ``now`` (``None`` and logged if its records are
    invalid)."""
    try:
        roots = {id(u) for u, _ in carried}
        done = [u for u in handle.units if id(u.root) not in roots]
        stages = form_stages(done, end_ns)
        calls = []
        for unit, task in carried:
            (stage,) = form_stages(_subtree(handle.units, unit), end_ns)
            calls.append(CarriedCall(stage.node, stage.kind, stage.backend, stage.calls[0], task))
        return PausedRun(
            app=handle.app,
            run_id=handle.run_id,
            tenant=handle.tenant,
            started_at=handle.started_at if prior is None else prior.started_at,
            deadline_s=handle.deadline_s,
            stages=stages,
            carried=tuple(calls),
            paused_at=now,
            paused_s=handle.paused_s,
            active_s=max(0.0, (end_ns - handle.start_ns) / NS_PER_S),
            pauses=1 if prior is None else prior.pauses + 1,
        )
    except Exception as exc:  # invalid records (GraphError) or a bug: never break the app
        log.warning("hermes: run %s of %s not described: %s", handle.run_id, handle.app, exc)
        return None


@dataclass(slots=True)
class ProgressCache:
    """Stages already formed from the first ``upto`` units of a running handle, so recording
    progress at every superstep costs the new stages only."""

    stages: tuple[Stage, ...] = ()
    upto: int = 0


def snapshot_run(
    handle: RunHandle, *, prior: PausedRun | None = None, cache: ProgressCache | None = None
) -> PausedRun | None:
    """Where a running ``handle`` is now (the stages of its leading finished units), without
    pausing it: what a process continuing the work after a crash continues (durable
    execution). With ``cache`` only the units finished since the last call are formed into
    stages. ``None`` if nothing finished yet or on invalid records (logged). Never raises."""
    if not handle.active or handle.end_ns is not None:
        return None
    cache = ProgressCache() if cache is None else cache
    units = handle.units
    start = stop = cache.upto
    while stop < len(units) and units[stop].root.end_ns is not None:
        stop += 1
    try:
        if stop > start:
            end_ns = max(u.root.end_ns or 0 for u in units[start:stop])
            cache.stages += form_stages(units[start:stop], end_ns)
            cache.upto = stop
        if not cache.stages:
            return None
        return PausedRun(
            app=handle.app,
            run_id=handle.run_id,
            tenant=handle.tenant,
            started_at=handle.started_at if prior is None else prior.started_at,
            deadline_s=handle.deadline_s,
            stages=cache.stages,
            carried=(),
            paused_at=time.time(),
            paused_s=handle.paused_s,
            active_s=max(0.0, (perf_counter_ns() - handle.start_ns) / NS_PER_S),
            pauses=0 if prior is None else prior.pauses,
        )
    except Exception as exc:  # invalid records (GraphError) or a bug: never break the app
        log.warning("hermes: progress of run %s not recorded: %s", handle.run_id, exc)
        return None


def pause_run(
    handle: RunHandle,
    carried: Sequence[tuple[UnitHandle, str]],
    *,
    prior: PausedRun | None = None,
    now: float | None = None,
) -> PausedRun | None:
    """Stop ``handle`` without ending it and describe it as a :class:`PausedRun`.

    ``carried`` lists the top-level units of the step that paused with their task names (empty
    for calls that completed); ``prior`` is the paused run ``handle`` resumed, if any (its pause
    time and start carry over). The handle becomes inert (nothing it does later is recorded) and
    ``run_pause`` is sent to the scheduler. Returns ``None`` for an inactive or ended handle, or
    if the records are invalid (logged). Never raises.
    """
    if not handle.active or handle.end_ns is not None:
        return None
    now = time.time() if now is None else now
    end_ns = perf_counter_ns()
    paused = _describe(handle, carried, prior, now, end_ns)
    if paused is None:
        return None
    handle.active = False  # inert: a late unit is detached, end() records nothing
    handle.end_ns = end_ns
    rec = _rt.RUNTIME.recorder
    if rec is not None:
        rec.emit({"type": "run_pause", "run_id": handle.run_id, "ts": now})
    for observer in _handles.OBSERVERS:  # this invocation's span ends; the resume opens another
        try:
            observer.run_ended(handle, None)
        except Exception:
            log.exception("hermes: unit observer %r failed on run pause", observer)
    return paused


def store_paused(
    store: Store | None, key: str, paused: PausedRun, namespace: str = PAUSED_NAMESPACE
) -> bool:
    """Write ``paused`` durably under ``key``; ``False`` (logged) if the store failed."""
    if store is None:
        return False
    try:
        store.put_json(namespace, key, paused.to_json())
    except Exception as exc:
        log.warning("hermes: could not store paused run %s: %r", paused.run_id, exc)
        return False
    return True


def take_paused(
    store: Store | None, key: str, namespace: str = PAUSED_NAMESPACE
) -> PausedRun | None:
    """Claim the paused run stored under ``key`` (a tombstone replaces it); ``None`` if none."""
    if store is None:
        return None
    try:
        raw = store.get_json(namespace, key)
        if raw is None or "path" not in raw:
            return None
        store.put_json(namespace, key, {"taken": True})
    except Exception as exc:
        log.warning("hermes: could not read paused run: %r", exc)
        return None
    return PausedRun.from_json(raw)


def _replay(
    handle: RunHandle,
    node: str,
    kind: UnitKind,
    backend: str | None,
    call: Call,
    start_ns: int,
    latency_ns: int,
) -> None:
    """Add a finished unit reproducing ``call`` (its service and wall time) to ``handle``.

    Built directly, not through ``open_unit``: it sends no events and notifies no observers
    (the scheduler saw the original call before the pause)."""
    unit = UnitHandle(handle, node, kind, backend, None, call.input_tokens)
    service_ns = int(call.service_s * NS_PER_S)
    unit.output_tokens = call.output_tokens
    unit.failed = call.failed
    unit.start_ns = start_ns
    unit.end_ns = start_ns + max(latency_ns, service_ns)
    unit.wait_ns = unit.end_ns - start_ns - service_ns
    handle.units.append(unit)


def _stage_ns(stage: Stage) -> int:
    return max(int((stage.latency_s or 0.0) * NS_PER_S), int(stage.service_s * NS_PER_S))


def resume_run(paused: PausedRun, *, now: float | None = None) -> tuple[RunHandle, int]:
    """Continue ``paused`` as a new handle with the same run id (its ``run_start`` tells the
    scheduler the run is active again); returns it and the ``perf_counter_ns`` time reserved
    for the carried step. Completed stages are replayed into the handle; the caller continues
    the carried calls with :func:`continue_call` when their tasks run again and replays the
    others with :func:`replay_carried`. Raises only what :func:`~hermes_sdk.start_run` raises.
    """
    from hermes_sdk.instrument import start_run  # the public entry point, wherever it lives

    now = time.time() if now is None else now
    handle = start_run(
        paused.app, deadline_s=paused.deadline_s, run_id=paused.run_id, tenant=paused.tenant
    )
    now_ns = perf_counter_ns()
    waited_s = paused.waited_s(now)
    handle.start_ns = now_ns - int(paused.active_s * NS_PER_S)  # elapsed counts active time
    handle.started_at = paused.started_at + waited_s
    handle.paused_s = waited_s
    carry_span = max((int(c.call.service_s * NS_PER_S) for c in paused.carried), default=0)
    carry_ns = now_ns - carry_span - 2 * _GAP_NS
    t = carry_ns - sum(_stage_ns(s) + _GAP_NS for s in paused.stages)
    for stage in paused.stages:
        latency_ns = int((stage.latency_s or 0.0) * NS_PER_S)
        for call in stage.calls:
            _replay(handle, stage.node, stage.kind, stage.backend, call, t, latency_ns)
        t += _stage_ns(stage) + _GAP_NS
    return handle, carry_ns


def continue_call(unit: UnitHandle, carried: CarriedCall) -> None:
    """Add the service and tokens ``carried`` had before the pause to ``unit`` (its task running
    again): a negative wait is service done before the pause."""
    unit.wait_ns -= int(carried.call.service_s * NS_PER_S)
    for field in ("input_tokens", "output_tokens"):
        before = getattr(carried.call, field)
        if before is not None:
            now_value = getattr(unit, field)
            setattr(unit, field, before if now_value is None else now_value + before)


def replay_carried(handle: RunHandle, calls: Sequence[CarriedCall], *, start_ns: int) -> None:
    """Replay carried calls as finished units starting at ``start_ns``: with a unit starting
    then they join its stage; at the time :func:`resume_run` reserved, a stage of their own."""
    for c in calls:
        _replay(handle, c.node, c.kind, c.backend, c.call, start_ns, 0)


def abandon_paused(paused: PausedRun, *, now: float | None = None) -> RunPath | None:
    """End a paused run that will not be resumed: learned like a failed run up to where it got
    (its interrupted calls count as failed), marked ``abandoned``, ``run_end`` sent."""
    now = time.time() if now is None else now
    try:
        tail: tuple[Stage, ...] = ()
        if paused.carried:
            names = {c.node for c in paused.carried}
            node = next(iter(names)) if len(names) == 1 else composite_name(names)
            kinds = {c.kind for c in paused.carried}
            backends = {c.backend for c in paused.carried}
            calls = tuple(
                replace(c.call, failed=True) if c.task else c.call for c in paused.carried
            )
            tail = (
                Stage(
                    node,
                    calls,
                    next(iter(kinds)) if len(kinds) == 1 else "custom",
                    next(iter(backends)) if len(backends) == 1 else None,
                ),
            )
        path = RunPath(
            app=paused.app,
            stages=paused.stages + tail,
            run_id=paused.run_id,
            tenant=paused.tenant,
            started_at=paused.started_at,
            deadline_s=paused.deadline_s,
            failed=True,
            paused_s=min(paused.waited_s(now), MAX_SERVICE_S),
            abandoned=True,
        )
    except Exception as exc:
        log.warning("hermes: abandoned run %s not recorded: %s", paused.run_id, exc)
        return None
    runtime = _rt.RUNTIME
    if runtime.recorder is not None:
        runtime.recorder.emit(
            {"type": "run_end", "run_id": path.run_id, "failed": True, "path": path_to_dict(path)}
        )
    runtime.deliver(path)
    return path


def sweep_abandoned(
    store: Store | None, horizon_s: float, *, app: str | None = None, now: float | None = None
) -> list[RunPath]:
    """End every stored paused run (of ``app`` and its sub-apps ``app/...``, or all) paused
    longer than ``horizon_s``; returns their paths."""
    if store is None:
        return []
    now = time.time() if now is None else now
    ended = []
    try:
        keys = store.list_keys(PAUSED_NAMESPACE)
    except Exception as exc:
        log.warning("hermes: could not list paused runs: %r", exc)
        return []
    for key in keys:
        try:
            raw = store.get_json(PAUSED_NAMESPACE, key)
        except Exception as exc:
            log.warning("hermes: could not read paused run: %r", exc)
            continue
        if raw is None or "path" not in raw:
            continue
        paused = PausedRun.from_json(raw)
        if paused is None or (
            app is not None and paused.app != app and not paused.app.startswith(app + "/")
        ):
            continue
        if now - paused.paused_at < horizon_s:
            continue
        taken = take_paused(store, key)
        if taken is not None:
            path = abandon_paused(taken, now=now)
            if path is not None:
                ended.append(path)
    return ended
