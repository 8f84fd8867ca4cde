"""How the scheduler admits: slots of each backend's admission queue acquired in rank order,
released, renewed and reclaimed, and each tenant's service charged for fair sharing.

:class:`SlotAdmission` is a part of :class:`~hermes_sdk.server.scheduler.Scheduler` (its base
class, on top of :class:`~hermes_sdk.server.run_events.RunEvents`), kept here so each module
reads as one concern; it only uses the scheduler's state declared below.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hermes_sdk.policy.fairness import TenantShares
from hermes_sdk.server.admission import AdmissionQueue, Lease, ledger_member
from hermes_sdk.server.global_queue import release_elsewhere
from hermes_sdk.server.ledger import RedisSlotLedger
from hermes_sdk.server.run_events import RunEvents
from hermes_sdk.server.run_views import RequestHint, RunKey


class UnknownBackend(LookupError):
    """Raised for a backend name the server was not configured with."""


class SlotAdmission(RunEvents):
    """Slot admission for :class:`~hermes_sdk.server.scheduler.Scheduler`."""

    ledger: RedisSlotLedger | None
    shares: TenantShares | None
    _gauges: dict[str, tuple[Any, Any, Any]]
    _held: dict[str, tuple[str, str]]
    """Fair sharing: lease_id -> (backend, tenant) of leases granted and not yet released."""

    def queue(self, backend: str) -> AdmissionQueue:
        """The admission queue of ``backend``; UnknownBackend if not configured."""
        q = self.queues.get(backend)
        if q is None:
            raise UnknownBackend(backend)
        return q

    async def acquire(
        self,
        backend: str,
        *,
        tenant: str,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
        timeout_s: float | None = None,
        cost: float = 0.0,
    ) -> Lease:
        """Wait for a slot on ``backend``; raises QueueTimeout after ``timeout_s``.

        ``cost`` (tokens) is charged to the backend queue's rate budget, if it has one.
        """
        q = self.queue(backend)
        key: RunKey | None = None
        if run_id is not None:
            key = (tenant, run_id)
            known = self._runs.get(key)
            if known is not None and known.paused:  # a request: the run is running again
                self._resume(known, self._clock())
                self._count_runs()
            if key not in self._runs and app is not None:
                self._hints.setdefault(key, RequestHint(app, deadline_s, self._clock()))
        self._gauges[backend][0].set(q.depth + 1)
        if self.shares is not None:
            self.shares.enter(backend, tenant)
        try:
            lease = await q.acquire(tenant=tenant, run_key=key, timeout_s=timeout_s, cost=cost)
        except BaseException:
            if self.shares is not None:
                self.shares.leave(backend, tenant)
            raise
        finally:
            self._observe_queue(q)
            if key is not None and key in self._hints and not self._waiting(key):
                del self._hints[key]
        self._gauges[backend][2].observe(lease.waited_s)
        if self.shares is not None:
            self._held[lease.lease_id] = (backend, tenant)
        return lease

    def release(self, lease_id: str, *, tenant: str | None = None) -> bool:
        """Release a lease (only its own tenant's when ``tenant`` is given).

        With a shared ledger a lease granted by another replica is released there too.
        """
        for q in self.queues.values():
            lease = q.lease(lease_id)
            if lease is not None:
                if tenant is not None and lease.tenant != tenant:
                    return False
                self._charge(q.backend, lease)  # before the release grants the slot again
                q.release(lease_id)
                self._observe_queue(q)
                return True
        if self.ledger is not None and tenant is not None:
            ledger = self.ledger
            return any(release_elsewhere(q, ledger, tenant, lease_id) for q in self.queues.values())
        return False

    def renew(self, lease_id: str, *, tenant: str | None = None) -> Lease | None:
        """Extend one of ``tenant``'s leases by its backend's lease_s; None if unknown."""
        for q in self.queues.values():
            lease = q.lease(lease_id)
            if lease is not None:
                if tenant is not None and lease.tenant != tenant:
                    return None
                return q.renew(lease_id)
        if self.ledger is not None and tenant is not None:  # granted by another replica
            member = ledger_member(tenant, lease_id)
            for q in self.queues.values():
                if self.ledger.extend(q.backend, member, q.lease_s):
                    now = time.monotonic()
                    return Lease(
                        lease_id, q.backend, tenant, None, math.nan, 0.0, now, now + q.lease_s
                    )
        return None

    @asynccontextmanager
    async def slot(
        self,
        backend: str,
        *,
        tenant: str,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
        timeout_s: float | None = None,
        cost: float = 0.0,
    ) -> AsyncIterator[Lease]:
        """Hold one slot of ``backend`` for the body of the ``async with``."""
        lease = await self.acquire(
            backend,
            tenant=tenant,
            run_id=run_id,
            app=app,
            deadline_s=deadline_s,
            timeout_s=timeout_s,
            cost=cost,
        )
        try:
            yield lease
        finally:
            self.release(lease.lease_id)

    def reclaim_expired(self) -> int:
        """Reclaim leases held past their backend's lease_s; returns how many."""
        total = 0
        for q in self.queues.values():
            if q.reconcile():
                self._observe_queue(q)
            n = q.reclaim_expired()
            if n:
                self.metrics.leases_reclaimed.labels(q.backend).inc(n)
                self._observe_queue(q)
            total += n
        if self.shares is not None:  # reclaimed or released elsewhere: no longer backlogged
            for lease_id, (backend, tenant) in list(self._held.items()):
                if self.queues[backend].lease(lease_id) is None:
                    del self._held[lease_id]
                    self.shares.leave(backend, tenant)
        return total

    def _charge(self, backend: str, lease: Lease) -> None:
        """Count a released lease's hold time as service its tenant received on ``backend``
        (the fair share of a budgeted upstream is charged its tokens when granted instead:
        :mod:`~hermes_sdk.server.gateway_budget`)."""
        held_s = max(0.0, time.monotonic() - lease.granted_at_s)
        self.metrics.tenant_service_s.labels(backend, lease.tenant).inc(held_s)
        if self.shares is None:
            return
        if self._held.pop(lease.lease_id, None) is not None:
            self.shares.leave(backend, lease.tenant)
        if self.queues[backend].budget is None:
            self.shares.charge(backend, lease.tenant, held_s)
        for tenant, share in self.shares.shares(backend).items():
            self.metrics.tenant_service_share.labels(backend, tenant).set(share)

    def _waiting(self, key: RunKey) -> bool:
        return any(w[2] == key for q in self.queues.values() for w in q.waiting())

    def _observe_queue(self, q: AdmissionQueue) -> None:
        depth, inflight, _ = self._gauges[q.backend]
        depth.set(q.depth)
        inflight.set(q.inflight)
