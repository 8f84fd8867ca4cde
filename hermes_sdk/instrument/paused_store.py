"""Paused runs in the store: write, claim, and end the ones nobody resumed.

A paused run (:class:`~hermes_sdk.instrument.paused_record.PausedRun`) lives in the store's
key/value space under its resume key until a process claims it to resume it (:func:`take_paused`
leaves a tombstone, so two processes never resume one run) or :func:`sweep_abandoned` ends it as
abandoned past the horizon: learned like a failed run, up to where it got.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from hermes_sdk.graph.records import MAX_SERVICE_S, RunPath, Stage, path_to_dict
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.paused_record import PAUSED_NAMESPACE, PausedRun
from hermes_sdk.instrument.stages import composite_name
from hermes_sdk.store import Store

log = logging.getLogger("hermes_sdk.instrument")


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
