"""Backend mechanics of the simulator: service accounting, cold starts, and the dispatch of
waiting calls to slots (with preemption on iteration-level engines and fair sharing between
tenants). A mixin of :class:`~hermes_sdk.sim.des.Simulation`, which owns the event loop, the
ranks and the stage transitions; this module owns what happens inside a backend.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Protocol

from hermes_sdk.policy import AppState
from hermes_sdk.policy.fairness import TenantShares
from hermes_sdk.sim.queue_pass import reorder_runs
from hermes_sdk.sim.sim_types import (
    COLD,
    DONE,
    EPS_S,
    RERANK_REL,
    RUNNING,
    WAITING,
    WAKE,
    WARM,
    WARMING,
    SimApp,
    SimBackend,
    SimRequest,
)


class BackendObserver(Protocol):
    """The part of a :class:`~hermes_sdk.sim.des.SimHook` the dispatcher calls."""

    def backend_starting(self, backend: str, t: float) -> None: ...

    def backend_ready(self, backend: str, t: float, startup_s: float) -> None: ...


class BackendDispatch:
    """Per-backend mechanics, mixed into :class:`~hermes_sdk.sim.des.Simulation` (which sets
    these attributes and implements :meth:`_rerank` and :meth:`_push`)."""

    hook: BackendObserver | None
    starting: Callable[[SimRequest, float], None] | None
    queue_plan: Callable[[AppState, float], tuple[float, float]] | None
    shares: TenantShares | None
    tenant_service_s: dict[str, dict[str, float]] | None
    service_window: tuple[float, float]
    finished: list[SimRequest]
    dirty: set[SimBackend]
    cold_waits: list[float]
    dynamic: bool
    has_quantum: bool
    las: bool
    can_preempt: bool
    min_quantum_s: float

    def _rerank(self, app: SimApp, t: float) -> None:
        raise NotImplementedError

    def _push(self, t: float, kind: int, obj: object, version: int = 0) -> None:
        raise NotImplementedError

    def _advance(self, b: SimBackend, t: float) -> None:
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
                    r.state = DONE
                    self.finished.append(r)
                    if self.shares is not None and not b.shared:
                        self.shares.leave(b.spec.name, r.app.tenant)
                else:
                    keep.append(r)
            b.running = keep
            b.stale = True
            self.dirty.add(b)

    def _has_waiting(self, b: SimBackend) -> bool:
        return any(b.tq.values()) if self.shares is not None else bool(b.waiting)

    def _pick_tenant(self, b: SimBackend) -> list[tuple[float, float, int, SimRequest, int]]:
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

    def _account(self, b: SimBackend, running: list[SimRequest], dt: float, t: float) -> None:
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

    def _peek(self, b: SimBackend) -> tuple[float, float, int, SimRequest, int] | None:
        h = b.waiting
        while h:
            entry = h[0]
            req = entry[3]
            if req.state != WAITING:
                heapq.heappop(h)
                continue
            app = req.app
            if entry[4] != app.version:
                heapq.heapreplace(h, (app.key, app.arrival_s, req.seq, req, app.version))
                continue
            return entry
        return None

    def _warm_up(self, b: SimBackend, t: float) -> bool:
        """Handle cold starts; True when the backend may serve now."""
        if b.state == WARM:
            return True
        if b.state == COLD:
            if not (self._has_waiting(b) or b.held):
                return False
            b.state = WARMING
            b.cold_starts += 1
            b.warm_start = t
            b.warm_at = t + b.spec.cold_start_s
            if self.hook is not None:
                self.hook.backend_starting(b.spec.name, t)
        if t < b.warm_at - EPS_S:
            return False
        b.state = WARM
        queued = [e for h in b.tq.values() for e in h] if self.shares is not None else b.waiting
        waiting = [e[3] for e in queued if e[3].state == WAITING] + b.held
        for req in waiting:
            wait = b.warm_at - max(req.arrival_s, b.warm_start)
            self.cold_waits.append(wait)
            req.app.stage_cold_s = max(req.app.stage_cold_s, wait)
        if b.held:
            for req in b.held:
                req.state = RUNNING
            b.running.extend(b.held)
            b.held = []
        b.stale = True
        if self.hook is not None:
            self.hook.backend_ready(b.spec.name, t, b.warm_at - b.warm_start)
        return True

    def _refresh_running(self, b: SimBackend, t: float, best: float) -> set[int]:
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

    def _reorder_by_feasibility(self, b: SimBackend, t: float) -> None:
        """The queue-wide deadline pass over ``b``'s runs; re-heaps its queue if keys moved."""
        live = {e[3].seq: e[3] for e in b.waiting if e[3].state == WAITING}
        runs = {r.app.idx: r.app for r in b.running}
        for req in live.values():
            runs.setdefault(req.app.idx, req.app)
        if reorder_runs(list(runs.values()), t, b.spec.capacity):
            b.waiting = [
                (r.app.key, r.app.arrival_s, r.seq, r, r.app.version) for r in live.values()
            ]
            heapq.heapify(b.waiting)

    def _dispatch(self, b: SimBackend, t: float) -> None:
        if b.last_t != t:
            self._advance(b, t)
        ready = b.state == WARM or self._warm_up(b, t)
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
                if entry[3].state != WAITING or entry[4] != entry[3].app.version:
                    entry = peek(b)
                    if entry is None:
                        break
                heapq.heappop(waiting)
                entry[3].state = RUNNING
                running.append(entry[3])
                if self.starting is not None:
                    self.starting(entry[3], t)
                b.stale = True
            if b.preemptive and running and waiting and self.can_preempt:
                entry = waiting[0]
                if entry[3].state != WAITING or entry[4] != entry[3].app.version:
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
                    worst.state = WAITING
                    heapq.heappush(waiting, (wa.key, wa.arrival_s, worst.seq, worst, wa.version))
                    entry[3].state = RUNNING
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
        elif b.state == WARMING:
            wake = b.warm_at
        else:
            wake = math.inf
            b.idle_since = t
        if wake == b.wake_t:
            return
        b.wake_version += 1
        b.wake_t = wake
        if wake < math.inf:
            self._push(wake, WAKE, b, b.wake_version)

    def _next_tick(self, b: SimBackend, t: float, best_waiting: float) -> float:
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
