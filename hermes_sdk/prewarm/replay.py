"""Discrete-event replay of app runs over cold-start backends, driven by the prewarm planner.

This is the prewarm planner's own simulator adapter: recorded or generated runs (``RunPath`` with
stage latencies and backends) arrive at given times and walk their stages; a stage on a tracked
backend finds it warm (no wait), starting (waits the rest of the start-up) or cold (starts it on
demand and waits a full cold start). Backends have no capacity limit, so the only delay studied is
the cold start. The planner sees the runs' states as they happen and learns each app's graph
online from completed runs (``observe``), exactly as the scheduler would.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.records import RunPath, RunState
from hermes_sdk.prewarm.ledger import PrewarmMetrics
from hermes_sdk.prewarm.planner import PrewarmPlanner

StartupSampler = Callable[[np.random.Generator], float]
"""Draws one true start-up time (seconds) of a backend."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Outcome of one replay; times in seconds."""

    completion_s: NDArray[np.float64]
    cold_wait_s: NDArray[np.float64]
    """Start-up seconds each run waited in total."""
    stage_waits_s: tuple[tuple[str, int, str, float], ...]
    """(run_id, stage index, backend, wait seconds) for every stage on a tracked backend."""
    metrics: dict[str, PrewarmMetrics]
    end_s: float


def replay(
    runs: Iterable[tuple[float, RunPath]],
    planner: PrewarmPlanner,
    startup: Mapping[str, StartupSampler],
    *,
    observe: Callable[[RunPath], None] | None = None,
    always_warm: bool = False,
    seed: int = 0,
) -> ReplayResult:
    """Replay ``(arrival_s, path)`` runs; backends in ``startup`` have cold starts."""
    rng = np.random.default_rng(seed)
    seq = itertools.count()
    events: list[tuple[float, int, str, str, int]] = []
    ledger = planner.ledger
    ready_at: dict[str, float] = {}
    arrivals: dict[str, float] = {}
    waits: dict[str, float] = {}
    stage_waits: list[tuple[str, int, str, float]] = []
    completion: list[float] = []
    paths: dict[str, RunPath] = {}
    next_wake = math.inf

    def push(t: float, kind: str, key: str = "", idx: int = 0) -> None:
        heapq.heappush(events, (t, next(seq), kind, key, idx))

    def start_backend(backend: str, now_s: float) -> None:
        t_ready = now_s + float(startup[backend](rng))
        ready_at[backend] = t_ready
        push(t_ready, "ready", backend)

    for i, (arrival_s, path) in enumerate(runs):
        run_id = path.run_id or f"run-{i}"
        paths[run_id] = path
        arrivals[run_id] = arrival_s
        waits[run_id] = 0.0
        push(arrival_s, "stage", run_id, 0)
    if always_warm:
        for backend in startup:
            ledger.starting(backend, 0.0, prewarm=False)
            ledger.ready(backend, 0.0, 0.0)
    now_s = 0.0

    def decide(now_s: float) -> None:
        nonlocal next_wake
        if always_warm:
            return
        decision = planner.decide(now_s)
        for signal in decision.signals:
            if signal.action == "prewarm":
                start_backend(signal.backend, now_s)
        if decision.wake_at_s < next_wake or next_wake <= now_s:
            next_wake = decision.wake_at_s
            if math.isfinite(next_wake):
                push(next_wake, "wake")

    while events:
        now_s, _, kind, key, idx = heapq.heappop(events)
        if kind == "wake":
            if now_s != next_wake:
                continue
            next_wake = math.inf
        elif kind == "ready":
            backend = key
            if ledger.get(backend).status == "starting" and ready_at.get(backend) == now_s:
                ledger.ready(backend, now_s)
        elif kind == "stage":
            run_id = key
            path = paths[run_id]
            stage = path.stages[idx]
            wait_s = 0.0
            backend = stage.backend or ""
            if backend in startup:
                found = ledger.request(backend, now_s)
                if found == "cold":
                    ledger.starting(backend, now_s, prewarm=False)
                    start_backend(backend, now_s)
                if found != "warm":
                    wait_s = max(0.0, ready_at[backend] - now_s)
                ledger.waited(backend, wait_s)
                stage_waits.append((run_id, idx, backend, wait_s))
            waits[run_id] += wait_s
            state = RunState.after(path.stages[: idx + 1])
            running = RunState(node=state.node, visits=state.visits, running=True)
            planner.update_run(run_id, path.app, running, now_s, tenant=path.tenant)
            push(now_s + wait_s + float(stage.latency_s or 0.0), "end", run_id, idx)
        elif kind == "end":
            run_id = key
            path = paths[run_id]
            backend = path.stages[idx].backend or ""
            if backend in startup:
                ledger.done(backend, now_s)
            if idx + 1 < len(path.stages):
                state = RunState.after(path.stages[: idx + 1])
                planner.update_run(run_id, path.app, state, now_s, tenant=path.tenant)
                push(now_s, "stage", run_id, idx + 1)
            else:
                planner.end_run(run_id, now_s)
                completion.append(now_s - arrivals[run_id])
                if observe is not None:
                    observe(path)
        decide(now_s)
    return ReplayResult(
        completion_s=np.asarray(completion),
        cold_wait_s=np.asarray(list(waits.values())),
        stage_waits_s=tuple(stage_waits),
        metrics=ledger.metrics(now_s),
        end_s=now_s,
    )
