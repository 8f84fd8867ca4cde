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
from typing import Final, Protocol

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
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.queue_pass import reorder_runs
from hermes_sdk.sim.workload import BackendSpec

EPS_S: Final = 1e-9
"""Work below this many seconds counts as done (float round-off)."""
RERANK_REL: Final = 0.02
"""Re-rank granularity: a running app is re-ranked after at least this share of its stage's
service so far (and ``min_quantum_s``); LAS switches when the running app's attained service
exceeds a waiting one's by this share. Continuous-time policies (LAS, Gittins on decreasing
hazards) would otherwise switch infinitely often."""
_ARRIVAL, _WAKE, _TICK = 0, 1, 2
_WAITING, _RUNNING, _DONE = 0, 1, 2
_COLD, _WARMING, _WARM = 0, 1, 2


class SimApp:
    """One app run inside the simulator (mutable; owned by :class:`Simulation`)."""

    __slots__ = (
        "arrival_s",
        "attained_s",
        "cold_wait_s",
        "deadline_s",
        "finish_s",
        "idx",
        "key",
        "name",
        "pending",
        "quantum_end_s",
        "records",
        "stage_attained_s",
        "stage_cold_s",
        "stage_i",
        "stage_start_s",
        "stages",
        "standalone_s",
        "start_by_s",
        "tenant",
        "total_s",
        "version",
        "visits",
        "work_s",
    )

    def __init__(
        self,
        idx: int,
        name: str,
        arrival_s: float,
        stages: list[RealStage],
        standalone_s: float,
        deadline_rel_s: float | None,
        tenant: str = "default",
    ) -> None:
        self.idx = idx
        self.tenant = tenant
        self.name = name
        self.arrival_s = arrival_s
        self.stages = stages
        self.standalone_s = standalone_s
        self.deadline_s = None if deadline_rel_s is None else arrival_s + deadline_rel_s
        self.total_s = sum([sum(s[3]) for s in stages])
        self.attained_s = 0.0
        self.stage_attained_s = 0.0
        self.stage_i = 0
        self.stage_start_s = arrival_s
        self.stage_cold_s = 0.0
        self.cold_wait_s = 0.0
        self.pending = 0
        self.key = 0.0
        self.version = 0
        self.quantum_end_s = math.inf
        self.finish_s = math.nan
        self.visits: dict[str, int] = {}
        self.records: list[Stage] = []
        self.work_s = 0.0
        """Predicted remaining service (seconds), for the queue-wide deadline pass."""
        self.start_by_s = math.nan
        """Latest start that still makes the deadline (the pass's ``queue_plan``), or NaN."""

    @property
    def run_id(self) -> str:
        """Run id shown to policies and in learned paths."""
        return f"run-{self.idx}"


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


class _Request:
    __slots__ = ("app", "arrival_s", "index", "rate", "remaining_s", "seq", "service_s", "state")

    def __init__(self, app: SimApp, index: int, service_s: float, t: float, seq: int) -> None:
        self.app = app
        self.index = index
        self.service_s = service_s
        self.remaining_s = service_s
        self.arrival_s = t
        self.seq = seq
        self.rate = 0.0
        self.state = _WAITING


class _Backend:
    __slots__ = (
        "busy_s",
        "can_cool",
        "cold_starts",
        "held",
        "idle_since",
        "last_t",
        "preemptive",
        "running",
        "shared",
        "slots",
        "spec",
        "speed",
        "stale",
        "state",
        "tq",
        "waiting",
        "wake_t",
        "wake_version",
        "warm_at",
        "warm_start",
    )

    def __init__(self, spec: BackendSpec, processor_sharing: bool) -> None:
        self.spec = spec
        self.slots = spec.servers
        self.preemptive = spec.preemptive
        self.shared = processor_sharing or spec.servers is None
        self.waiting: list[tuple[float, float, int, _Request, int]] = []
        self.tq: dict[str, list[tuple[float, float, int, _Request, int]]] = {}
        """Per-tenant waiting heaps under fair sharing (``waiting`` is then the picked one)."""
        self.held: list[_Request] = []
        self.running: list[_Request] = []
        self.last_t = 0.0
        self.busy_s = 0.0
        self.wake_version = 0
        self.wake_t = math.inf
        self.speed = spec.speed
        self.stale = True
        """The running set changed since the pending wake-up was computed."""
        self.can_cool = spec.cold_start_s > 0 and math.isfinite(spec.keep_alive_s)
        cold = spec.cold_start_s > 0 and not spec.initially_warm
        self.state = _COLD if cold else _WARM
        self.warm_at = 0.0
        self.warm_start = 0.0
        self.idle_since = 0.0
        self.cold_starts = 0


class Simulation:
    """Runs ``apps`` (drawn upfront, sorted by arrival) over ``backends`` under ``policy``."""

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
        self.starting: Callable[[_Request, float], None] | None = getattr(
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
        self.backends = {name: _Backend(spec, self.ps) for name, spec in backends.items()}
        self.observe = observe
        self.dynamic = bool(getattr(policy, "dynamic", True))
        self.time_varying = bool(getattr(policy, "time_varying", False))
        self.has_quantum = hasattr(policy, "rank_and_quantum")
        self.queue_plan: Callable[[AppState, float], tuple[float, float]] | None = (
            getattr(policy, "queue_plan", None) if getattr(policy, "queue_pass", False) else None
        )
        """The policy's per-run inputs to the queue-wide deadline pass, when it asks for it
        (:mod:`hermes_sdk.policy.deadline_queue`); applied on preemptive engines."""
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
        self.finished: list[_Request] = []
        self.dirty: set[_Backend] = set()
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
        self._push(self.apps[0].arrival_s, _ARRIVAL, 0)
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
            if kind == _WAKE:
                backend: _Backend = obj  # type: ignore[assignment]
                if version != backend.wake_version:
                    continue
                backend.wake_t = math.inf
                events += 1
                self._advance(backend, t)
                dirty.add(backend)
            elif kind == _TICK:
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
                    heapq.heappush(heap, (apps[idx + 1].arrival_s, self.seq, _ARRIVAL, idx + 1, 0))
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
            self._push(max(wake, t), _TICK, None, self.tick_version)
        dirty = self.dirty
        while dirty:
            self._dispatch(dirty.pop(), t)

    def prewarm(self, backend: str, t: float) -> bool:
        """Start ``backend``'s start-up (``cold_start_s``) at ``t`` if it is cold; True if so."""
        b = self.backends[backend]
        if b.state != _COLD:
            return False
        b.state, b.warm_start = _WARMING, t
        b.warm_at = t + b.spec.cold_start_s
        b.cold_starts += 1
        self.dirty.add(b)
        return True

    def release(self, backend: str) -> bool:
        """Turn ``backend`` cold if it has a cold start and is warm with nothing running or
        queued; True if so."""
        b = self.backends[backend]
        if b.state != _WARM or b.running or b.held or self._has_waiting(b):
            return False
        if b.spec.cold_start_s <= 0:
            return False
        b.state = _COLD
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
            self._submit(backend, _Request(app, i, service, t, seq), t)
        self.seq = seq
        if self.hook is not None:
            self.hook.stage_started(app, t)
            self.tick_due = True

    def _submit(self, b: _Backend, req: _Request, t: float) -> None:
        if b.last_t != t:
            self._advance(b, t)
        if (
            b.can_cool
            and b.state == _WARM
            and not b.running
            and not self._has_waiting(b)
            and t - b.idle_since > b.spec.keep_alive_s
        ):
            b.state = _COLD
        if b.shared:
            if b.state == _WARM:
                b.running.append(req)
                req.state = _RUNNING
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

    def _advance(self, b: _Backend, t: float) -> None:
        """Account service from ``b.last_t`` to ``t`` at the current rates; collect finishers."""
        dt = t - b.last_t
        b.last_t = t
        running = b.running
        if not running:
            return
        done = False
        if dt > 0.0:
            b.busy_s += dt * (min(len(running), b.slots) if b.slots else len(running))
            if self.shares is not None or self.tenant_service_s is not None:
                self._account(b, running, dt, t)
            for r in running:
                work = r.rate * dt
                left = r.remaining_s
                if work >= left - EPS_S:
                    work = left
                    done = True
                r.remaining_s = left - work
                app = r.app
                app.attained_s += work
                app.stage_attained_s += work
        else:
            for r in running:
                if r.remaining_s <= EPS_S:
                    done = True
                    break
        if done:
            keep = []
            for r in running:
                if r.remaining_s <= EPS_S:
                    r.state = _DONE
                    self.finished.append(r)
                    if self.shares is not None and not b.shared:
                        self.shares.leave(b.spec.name, r.app.tenant)
                else:
                    keep.append(r)
            b.running = keep
            b.stale = True
            self.dirty.add(b)

    def _request_done(self, req: _Request, t: float) -> None:
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

    # --- dispatch ------------------------------------------------------------------------------

    def _has_waiting(self, b: _Backend) -> bool:
        return any(b.tq.values()) if self.shares is not None else bool(b.waiting)

    def _pick_tenant(self, b: _Backend) -> list[tuple[float, float, int, _Request, int]]:
        """Point ``b.waiting`` at the heap of the tenant fair sharing serves next; returns it."""
        shares = self.shares
        assert shares is not None
        while True:
            tenants = [name for name, h in b.tq.items() if h]
            if not tenants:
                b.waiting = []
                return b.waiting
            b.waiting = b.tq[shares.pick(b.spec.name, tenants)]
            if self._peek(b) is not None:
                return b.waiting

    def _account(self, b: _Backend, running: list[_Request], dt: float, t: float) -> None:
        """Charge the service of ``dt`` seconds to the running requests' tenants."""
        name = b.spec.name
        shares = None if b.shared else self.shares
        window = self.tenant_service_s
        lo, hi = self.service_window
        per = window.setdefault(name, {}) if window is not None and lo <= t <= hi else None
        for r in running:
            work = min(r.rate * dt, r.remaining_s)
            tenant = r.app.tenant
            if shares is not None:
                shares.charge(name, tenant, work)
            if per is not None:
                per[tenant] = per.get(tenant, 0.0) + work

    def _peek(self, b: _Backend) -> tuple[float, float, int, _Request, int] | None:
        h = b.waiting
        while h:
            entry = h[0]
            req = entry[3]
            if req.state != _WAITING:
                heapq.heappop(h)
                continue
            app = req.app
            if entry[4] != app.version:
                heapq.heapreplace(h, (app.key, app.arrival_s, req.seq, req, app.version))
                continue
            return entry
        return None

    def _warm_up(self, b: _Backend, t: float) -> bool:
        """Handle cold starts; True when the backend may serve now."""
        if b.state == _WARM:
            return True
        if b.state == _COLD:
            if not (self._has_waiting(b) or b.held):
                return False
            b.state = _WARMING
            b.cold_starts += 1
            b.warm_start = t
            b.warm_at = t + b.spec.cold_start_s
            if self.hook is not None:
                self.hook.backend_starting(b.spec.name, t)
        if t < b.warm_at - EPS_S:
            return False
        b.state = _WARM
        queued = [e for h in b.tq.values() for e in h] if self.shares is not None else b.waiting
        waiting = [e[3] for e in queued if e[3].state == _WAITING] + b.held
        for req in waiting:
            wait = b.warm_at - max(req.arrival_s, b.warm_start)
            self.cold_waits.append(wait)
            req.app.stage_cold_s = max(req.app.stage_cold_s, wait)
        if b.held:
            for req in b.held:
                req.state = _RUNNING
            b.running.extend(b.held)
            b.held = []
        b.stale = True
        if self.hook is not None:
            self.hook.backend_ready(b.spec.name, t, b.warm_at - b.warm_start)
        return True

    def _refresh_running(self, b: _Backend, t: float, best: float) -> set[int]:
        """Re-rank running apps whose rank may have changed since it was computed; returns the
        indices of the apps re-ranked.

        LAS ranks (attained service) are cheap: always. Gittins: only apps past their quantum
        (within it the rank can only improve, so the stale rank is an upper bound; the
        preemption loop re-ranks the worst running app before it preempts it). Others: when a
        waiting app may outrank a running one, or after the re-rank granule of service.
        """
        fresh: set[int] = set()
        worst = max(r.app.key for r in b.running)
        for r in b.running:
            app = r.app
            if app.idx in fresh:
                continue
            if (
                self.las
                or app.attained_s >= app.quantum_end_s - EPS_S
                or (not self.has_quantum and best < worst)
            ):
                fresh.add(app.idx)
                self._rerank(app, t)
        return fresh

    def _reorder_by_feasibility(self, b: _Backend, t: float) -> None:
        """The queue-wide deadline pass over ``b``'s runs; re-heaps its queue if keys moved."""
        live = {e[3].seq: e[3] for e in b.waiting if e[3].state == _WAITING}
        runs = {r.app.idx: r.app for r in b.running}
        for req in live.values():
            runs.setdefault(req.app.idx, req.app)
        if reorder_runs(list(runs.values()), t, b.spec.capacity):
            b.waiting = [
                (r.app.key, r.app.arrival_s, r.seq, r, r.app.version) for r in live.values()
            ]
            heapq.heapify(b.waiting)

    def _dispatch(self, b: _Backend, t: float) -> None:
        if b.last_t != t:
            self._advance(b, t)
        ready = b.state == _WARM or self._warm_up(b, t)
        tick = math.inf
        running = b.running
        fair = self.shares is not None and not b.shared
        if fair and ready:
            self._pick_tenant(b)
        if ready and not b.shared and b.waiting:
            if self.queue_plan is not None and b.preemptive and not fair:
                self._reorder_by_feasibility(b, t)
            slots = b.slots or 0
            waiting = b.waiting
            peek = self._peek
            while len(running) < slots:
                if fair:
                    waiting = self._pick_tenant(b)
                entry = waiting[0] if waiting else None
                if entry is None:
                    break
                if entry[3].state != _WAITING or entry[4] != entry[3].app.version:
                    entry = peek(b)
                    if entry is None:
                        break
                heapq.heappop(waiting)
                entry[3].state = _RUNNING
                running.append(entry[3])
                if self.starting is not None:
                    self.starting(entry[3], t)
                b.stale = True
            if b.preemptive and running and waiting and self.can_preempt:
                entry = waiting[0]
                if entry[3].state != _WAITING or entry[4] != entry[3].app.version:
                    entry = peek(b)
                fresh: set[int] = set()
                if entry is not None and self.dynamic:
                    fresh = self._refresh_running(b, t, entry[0])
                    entry = peek(b)
                while entry is not None:
                    # fair sharing preempts only within the picked tenant
                    tenant = entry[3].app.tenant
                    pool = [r for r in running if r.app.tenant == tenant] if fair else running
                    if not pool:
                        break
                    worst = pool[0]
                    wa = worst.app
                    for r in pool:
                        ra = r.app
                        if ra.key > wa.key or (
                            ra.key == wa.key and (ra.arrival_s, r.seq) > (wa.arrival_s, worst.seq)
                        ):
                            worst, wa = r, ra
                    wk = wa.key
                    if entry[0] > wk or (
                        entry[0] == wk and (entry[1], entry[2]) >= (wa.arrival_s, worst.seq)
                    ):
                        break
                    if self.has_quantum and wa.idx not in fresh:
                        # its stale rank is an upper bound: look at the current one first
                        fresh.add(wa.idx)
                        self._rerank(wa, t)
                        entry = peek(b)
                        continue
                    heapq.heappop(waiting)
                    running.remove(worst)
                    worst.state = _WAITING
                    heapq.heappush(waiting, (wa.key, wa.arrival_s, worst.seq, worst, wa.version))
                    entry[3].state = _RUNNING
                    running.append(entry[3])
                    if self.starting is not None:
                        self.starting(entry[3], t)
                    b.stale = True
                    entry = peek(b)
                if entry is not None and self.dynamic:
                    tick = self._next_tick(b, t, entry[0])
        if ready and running:
            if not b.stale and tick == math.inf and b.wake_t < math.inf:
                return  # same requests at the same rates: the pending wake-up still holds
            b.stale = False
            k = len(running)
            speed = b.speed
            if b.shared and b.slots is not None and k > b.slots:
                rate = speed[min(b.slots, len(speed)) - 1] * b.slots / k
            else:
                rate = speed[min(k, len(speed)) - 1]
            soonest = math.inf
            for r in running:
                r.rate = rate
                if r.remaining_s < soonest:
                    soonest = r.remaining_s
            wake = t + soonest / rate
            if tick < wake:
                wake = tick
        elif b.state == _WARMING:
            wake = b.warm_at
        else:
            wake = math.inf
            b.idle_since = t
        if wake == b.wake_t:
            return
        b.wake_version += 1
        b.wake_t = wake
        if wake < math.inf:
            self._push(wake, _WAKE, b, b.wake_version)

    def _next_tick(self, b: _Backend, t: float, best_waiting: float) -> float:
        """When a running app's rank may next fall behind a waiting one (quantum or LAS)."""
        rates: dict[int, tuple[SimApp, float]] = {}
        speed = b.spec.speed_at(len(b.running))
        for r in b.running:
            app, rate = rates.get(r.app.idx, (r.app, 0.0))
            rates[r.app.idx] = (app, rate + speed)
        tick = math.inf
        for app, rate in rates.values():
            if self.has_quantum:
                need = app.quantum_end_s - app.attained_s
            elif self.las:
                need = best_waiting * (1 + RERANK_REL) + self.min_quantum_s - app.attained_s
            else:
                continue
            tick = min(tick, t + max(need, EPS_S) / rate)
        return tick
