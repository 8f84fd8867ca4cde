"""The discrete-event core: apps moving through stages over backends, ordered by a policy.

One heap of events (app arrivals and backend wake-ups), one clock in seconds. A backend runs
requests on ``servers`` slots at a speed that depends on how many run (a continuous-batching
throughput curve); ``preemptive`` backends preempt-resume the worst-ranked running request
whenever a better one waits (an iteration-level LLM engine); processor sharing (policy ``ps``)
serves every request at once. Ranks come from the policy and are recomputed when an app's state
changes: a stage starts or a call ends, a running app crosses its Gittins quantum (the service
after which its index may fall), or, for LAS, its attained service passes a waiting app's.

An optional :class:`SimHook` watches stage starts and ends and backend start-ups, and at its
ticks may warm or release backends (:meth:`Simulation.prewarm`, :meth:`Simulation.release`):
the prewarm planner runs inside the simulator this way (``hermes_sdk.prewarm.sim_des``).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import Protocol

from hermes_sdk.graph.records import Call, RunPath, RunState, Stage
from hermes_sdk.policy import (
    AppFCFSPolicy,
    AppState,
    FCFSPolicy,
    LASPolicy,
    Policy,
    ProcessorSharingPolicy,
    SRPTOraclePolicy,
)
from hermes_sdk.policy.fairness import tenant_shares_of
from hermes_sdk.sim.clairvoyant import true_remaining_latency
from hermes_sdk.sim.dispatch import BackendDispatch
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.sim_types import (
    ARRIVAL,
    COLD,
    RERANK_REL,
    RUNNING,
    TICK,
    WAKE,
    WARM,
    WARMING,
    SimApp,
    SimBackend,
    SimRequest,
)
from hermes_sdk.sim.workload import BackendSpec


class SimHook(Protocol):
    """Observer of a :class:`Simulation` that may warm and release its backends.

    Called synchronously from the event loop at simulated time ``t``; the observers must not
    change the apps. Without a hook the simulator pays one ``is None`` check per call site.
    """

    def stage_started(self, app: SimApp, t: float) -> None:
        """``app`` entered stage ``app.stages[app.stage_i]``; its calls were submitted."""

    # Optional: ``stage_entering(app, t) -> tuple[float, ...]``, the service seconds of the calls
    # of ``app.stages[app.stage_i]`` about to be submitted (called before ``stage_started``), and
    # ``request_starting(req, t)``, a queued call dispatched to a slot of a backend with slots.

    def stage_done(self, app: SimApp, stage: RealStage, t: float) -> None:
        """The last call of ``stage`` ended, after the app moved on: its next stage started
        (:meth:`stage_started` was called) or it finished (``app.stage_i == len(app.stages)``,
        ``app.finish_s == t``, its path observed)."""

    def backend_starting(self, backend: str, t: float) -> None:
        """A cold ``backend`` began its start-up on demand (a request found it cold); not
        called for starts the hook asked for with :meth:`Simulation.prewarm`."""

    def backend_ready(self, backend: str, t: float, startup_s: float) -> None:
        """``backend`` finished a start-up of ``startup_s`` seconds and serves from now."""

    def tick(self, sim: Simulation, t: float) -> float:
        """Decide: called after every event in which a stage started or ended (once its
        backends were dispatched) and at the time the previous tick returned (``inf``: none;
        a new return value replaces a pending one). May call ``sim.prewarm``/``sim.release``."""
        ...


class Simulation(BackendDispatch):
    """Runs ``apps`` (drawn upfront, sorted by arrival) over ``backends`` under ``policy``."""

    hook: SimHook | None

    def __init__(
        self,
        apps: Sequence[SimApp],
        backends: dict[str, BackendSpec],
        policy: Policy,
        *,
        observe: Callable[[RunPath], object] | None = None,
        min_quantum_s: float = 1e-3,
        progress: Callable[[int, int], None] | None = None,
        mark_idx: int = 0,
        hook: SimHook | None = None,
    ) -> None:
        self.apps = apps
        self.hook = hook
        self.entering: Callable[[SimApp, float], tuple[float, ...]] | None = getattr(
            hook, "stage_entering", None
        )
        """Optional hook method: the service seconds of the stage ``app`` enters (a prefix KV
        cache shortens LLM calls whose prefix it holds, :mod:`hermes_sdk.sim.kv_des`)."""
        self.starting: Callable[[SimRequest, float], None] | None = getattr(
            hook, "request_starting", None
        )
        """Optional hook method: a queued request is dispatched to a slot (it may lower the
        request's ``remaining_s`` on its first start: prefill served from a KV cache)."""
        self.tick_due = False
        """A stage started or ended since the hook's last tick."""
        self.tick_t = math.inf
        self.tick_version = 0
        self.mark_idx = mark_idx
        self.policy = policy
        self.ps = bool(getattr(policy, "processor_sharing", False))
        self.backends = {name: SimBackend(spec, self.ps) for name, spec in backends.items()}
        self.observe = observe
        self.dynamic = bool(getattr(policy, "dynamic", True))
        self.time_varying = bool(getattr(policy, "time_varying", False))
        self.has_quantum = hasattr(policy, "rank_and_quantum")
        self.queue_plan: Callable[[AppState, float], tuple[float, float]] | None = (
            getattr(policy, "queue_plan", None) if getattr(policy, "queue_pass", False) else None
        )
        """The policy's per-run inputs to the queue-wide deadline pass, when it asks for it
        (:mod:`hermes_sdk.policy.deadline_queue`); applied on preemptive engines."""
        self.speed1: dict[str, float] | None = (
            {name: spec.speed_at(1) for name, spec in backends.items()}
            if getattr(policy, "clairvoyant_latency", False)
            else None
        )
        """Per-backend speed of one request, set when the policy reads true remaining latency
        (:mod:`hermes_sdk.sim.clairvoyant`; bench-only oracles)."""
        self.las = isinstance(policy, LASPolicy)
        fast: dict[type, Callable[[SimApp], float]] = {
            FCFSPolicy: lambda a: a.stage_start_s,
            ProcessorSharingPolicy: lambda a: a.stage_start_s,
            AppFCFSPolicy: lambda a: a.arrival_s,
            LASPolicy: lambda a: a.attained_s,
            SRPTOraclePolicy: lambda a: max(a.total_s - a.attained_s, 0.0),
        }
        self.fast_key = fast.get(type(policy))
        self.can_preempt = type(policy) is not FCFSPolicy
        """Request-FCFS keys (stage start times) never decrease in submission order, so under
        it a waiting request never outranks a running one and dispatch skips the scan."""
        self.shares = None if self.ps else tenant_shares_of(policy)
        """Tenant counters of a fair-share policy (None: one queue per backend)."""
        self.service_window = (-math.inf, math.inf)
        self.tenant_service_s: dict[str, dict[str, float]] | None = None
        """backend -> tenant -> service seconds received within ``service_window``, when
        tracked (set to a dict to track)."""
        """Keys of the simple baselines without building an AppState (same values as rank)."""
        self.min_quantum_s = min_quantum_s
        self.progress = progress
        self.heap: list[tuple[float, int, int, object, int]] = []
        self.seq = 0
        self.events = 0
        self.in_system = 0
        """Measured apps (index >= mark_idx) now in the system."""
        self.area = 0.0
        """Integral over time of ``in_system`` (app-seconds), for the Little's law check."""
        self.area_t = 0.0
        self.done = 0
        self.finished: list[SimRequest] = []
        self.dirty: set[SimBackend] = set()
        self.cold_waits: list[float] = []

    # --- ranks ---------------------------------------------------------------------------------

    def _rerank(self, app: SimApp, t: float) -> None:
        fast = self.fast_key
        if fast is not None:
            key = fast(app)
            if key != app.key:
                app.key = key
                app.version += 1
            return
        stage = app.stages[app.stage_i]
        state = AppState(
            app=app.name,
            run_id=app.run_id,
            arrival_s=app.arrival_s,
            attained_s=app.attained_s,
            state=RunState(
                node=stage.node,
                visits=tuple(sorted(app.visits.items())),
                running=True,
                # per call, as the PDGraph and the server define it (stage service / width)
                elapsed_s=app.stage_attained_s / max(1, stage.width),
                input_tokens=stage.input_tokens[0] if stage.input_tokens else None,
                width=stage.width,
            ),
            deadline_s=app.deadline_s,
            request_arrival_s=app.stage_start_s,
            tenant=app.tenant,
            true_remaining_s=max(app.total_s - app.attained_s, 0.0),
            true_remaining_latency_s=(
                true_remaining_latency(app, self.speed1) if self.speed1 is not None else None
            ),
        )
        policy = self.policy
        if self.time_varying:
            key = policy.order_key(state, t)  # type: ignore[attr-defined]
            granule = max(RERANK_REL * app.stage_attained_s, self.min_quantum_s)
            app.quantum_end_s = app.attained_s + granule
        elif self.has_quantum:
            key, quantum = policy.rank_and_quantum(state, t)  # type: ignore[attr-defined]
            granule = max(RERANK_REL * app.stage_attained_s, self.min_quantum_s)
            app.quantum_end_s = app.attained_s + max(quantum, granule)
        else:
            key = policy.rank(state, t)
            granule = max(RERANK_REL * app.stage_attained_s, self.min_quantum_s)
            app.quantum_end_s = app.attained_s + granule
        if self.queue_plan is not None:
            app.work_s, app.start_by_s = self.queue_plan(state, t)
        if key != app.key:
            app.key = key
            app.version += 1

    # --- event loop ----------------------------------------------------------------------------

    def _push(self, t: float, kind: int, obj: object, version: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, obj, version))

    def run(self) -> None:
        """Simulate until every app has finished."""
        if not self.apps:
            return
        self._push(self.apps[0].arrival_s, ARRIVAL, 0)
        heap = self.heap
        pop = heapq.heappop
        total = len(self.apps)
        step = max(1, total // 100)
        reported = 0
        apps = self.apps
        mark = self.mark_idx
        finished = self.finished
        dirty = self.dirty
        hook = self.hook
        events = 0
        while heap:
            t, _, kind, obj, version = pop(heap)
            if kind == WAKE:
                backend: SimBackend = obj  # type: ignore[assignment]
                if version != backend.wake_version:
                    continue
                backend.wake_t = math.inf
                events += 1
                self._advance(backend, t)
                dirty.add(backend)
            elif kind == TICK:
                if version != self.tick_version:
                    continue
                self.tick_t = math.inf
                events += 1
                self.tick_due = True
            else:
                events += 1
                idx: int = obj  # type: ignore[assignment]
                if idx >= mark:
                    self.area += self.in_system * (t - self.area_t)
                    self.area_t = t
                    self.in_system += 1
                if idx + 1 < total:
                    self.seq += 1
                    heapq.heappush(heap, (apps[idx + 1].arrival_s, self.seq, ARRIVAL, idx + 1, 0))
                self._enter_stage(apps[idx], t)
            while finished:
                self._request_done(finished.pop(), t)
            while dirty:
                self._dispatch(dirty.pop(), t)
            if hook is not None and self.tick_due:
                self._tick(hook, t)
            if self.progress is not None and self.done >= reported + step:
                reported = self.done
                self.progress(self.done, total)
        self.events = events

    def _tick(self, hook: SimHook, t: float) -> None:
        self.tick_due = False
        wake = hook.tick(self, t)
        if math.isfinite(wake) and wake != self.tick_t:
            self.tick_version += 1
            self.tick_t = wake
            self._push(max(wake, t), TICK, None, self.tick_version)
        dirty = self.dirty
        while dirty:
            self._dispatch(dirty.pop(), t)

    def prewarm(self, backend: str, t: float) -> bool:
        """Start ``backend``'s start-up (``cold_start_s``) at ``t`` if it is cold; True if so."""
        b = self.backends[backend]
        if b.state != COLD:
            return False
        b.state, b.warm_start = WARMING, t
        b.warm_at = t + b.spec.cold_start_s
        b.cold_starts += 1
        self.dirty.add(b)
        return True

    def release(self, backend: str) -> bool:
        """Turn ``backend`` cold if it has a cold start and is warm with nothing running or
        queued; True if so."""
        b = self.backends[backend]
        if b.state != WARM or b.running or b.held or self._has_waiting(b):
            return False
        if b.spec.cold_start_s <= 0:
            return False
        b.state = COLD
        return True

    def _enter_stage(self, app: SimApp, t: float) -> None:
        node, unit, _, services, _, _ = app.stages[app.stage_i]
        if self.entering is not None:  # before the visit is counted: the state the call left
            services = self.entering(app, t)
        visits = app.visits
        visits[node] = visits.get(node, 0) + 1
        app.pending = len(services)
        app.stage_attained_s = 0.0
        app.stage_start_s = t
        app.stage_cold_s = 0.0
        fast = self.fast_key
        if fast is None:
            self._rerank(app, t)
        else:
            key = fast(app)
            if key != app.key:
                app.key = key
                app.version += 1
        backend = self.backends[unit.backend]
        seq = self.seq
        for i, service in enumerate(services):
            seq += 1
            self._submit(backend, SimRequest(app, i, service, t, seq), t)
        self.seq = seq
        if self.hook is not None:
            self.hook.stage_started(app, t)
            self.tick_due = True

    def _submit(self, b: SimBackend, req: SimRequest, t: float) -> None:
        if b.last_t != t:
            self._advance(b, t)
        if (
            b.can_cool
            and b.state == WARM
            and not b.running
            and not self._has_waiting(b)
            and t - b.idle_since > b.spec.keep_alive_s
        ):
            b.state = COLD
        if b.shared:
            if b.state == WARM:
                b.running.append(req)
                req.state = RUNNING
                b.stale = True
            else:
                b.held.append(req)
        else:
            app = req.app
            entry = (app.key, app.arrival_s, req.seq, req, app.version)
            if self.shares is not None:
                self.shares.enter(b.spec.name, app.tenant)
                heapq.heappush(b.tq.setdefault(app.tenant, []), entry)
            else:
                heapq.heappush(b.waiting, entry)
        self.dirty.add(b)

    def _request_done(self, req: SimRequest, t: float) -> None:
        app = req.app
        app.pending -= 1
        if app.pending > 0:
            if self.dynamic:
                self._rerank(app, t)
            return
        stage = app.stages[app.stage_i]
        app.cold_wait_s += app.stage_cold_s
        if self.observe is not None:
            calls = tuple(
                Call(
                    service_s=s,
                    input_tokens=stage.input_tokens[i] if stage.input_tokens else None,
                    output_tokens=stage.output_tokens[i] if stage.output_tokens else None,
                )
                for i, s in enumerate(stage.services_s)
            )
            app.records.append(
                Stage(
                    node=stage.node,
                    calls=calls,
                    kind=stage.unit.kind,
                    backend=stage.unit.backend,
                    latency_s=t - app.stage_start_s,
                )
            )
        app.stage_i += 1
        if app.stage_i < len(app.stages):
            self._enter_stage(app, t)
            if self.hook is not None:
                self.hook.stage_done(app, stage, t)
                self.tick_due = True
            return
        app.finish_s = t
        if app.idx >= self.mark_idx:
            self.area += self.in_system * (t - self.area_t)
            self.area_t = t
            self.in_system -= 1
        self.done += 1
        if self.observe is not None:
            path = RunPath(
                app=app.name,
                stages=tuple(app.records),
                run_id=app.run_id,
                tenant=app.tenant,
                started_at=app.arrival_s,
                deadline_s=None if app.deadline_s is None else app.deadline_s - app.arrival_s,
            )
            app.records = []
            self.observe(path)
        if self.hook is not None:
            self.hook.stage_done(app, stage, t)
            self.tick_due = True
