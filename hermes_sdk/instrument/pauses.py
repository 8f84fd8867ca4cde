"""Runs that pause and resume: one run across the invocations of a human-in-the-loop app.

A run that stops to wait for a person or an event (a LangGraph ``interrupt()``) is *paused*, not
ended: :func:`pause_run` turns its handle into a :class:`PausedRun` (the stages completed so far,
plus the calls of the interrupted step, which the resumed step continues), which the caller
stores under a *resume key* derived from what identifies the paused work (for LangGraph: app,
tenant, ``thread_id`` and checkpoint namespace). Any process sharing that store can claim it
and :func:`resume_run` it: a new handle with the same run
id, its completed stages replayed as finished units (no events, no observers) so the path that
ends is the whole run. The time between pause and resume is counted in ``paused_s``, never as
service, latency or elapsed run time (deadlines are relative to active time).

The record itself is :mod:`hermes_sdk.instrument.paused_record`; writing it, claiming it and
ending the ones not resumed within a horizon (*abandoned*: learned like a failed run, up to where
it got) is :mod:`hermes_sdk.instrument.paused_store`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Final

from hermes_sdk.graph.records import Call, Stage, UnitKind
from hermes_sdk.instrument import handles as _handles
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.paused_record import CarriedCall, PausedRun
from hermes_sdk.instrument.stages import NS_PER_S, form_stages

log = logging.getLogger("hermes_sdk.instrument")

_GAP_NS: Final = 1_000
"""Gap between replayed stages so they never overlap (stage formation groups overlaps)."""


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
    if _handles.OBSERVERS:  # this invocation's span ends; the resume opens another
        _handles.notify("run_ended", handle, None)
    return paused


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
