"""An admission queue whose waiters are ordered across all replicas (see global_order).

Local bookkeeping (leases, depth, renew, reconcile with the ledger) is the
:class:`~hermes_sdk.server.admission.AdmissionQueue`'s; who gets a freed slot is decided in
Redis by :class:`~hermes_sdk.server.global_order.GlobalOrder`. When Redis cannot be reached the
queue admits like a plain one (local order, local capacity), logged once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Callable, Hashable

import redis

from hermes_sdk.server.admission import (
    AdmissionQueue,
    Lease,
    QueueTimeout,
    RankFn,
    SlotLedger,
    _Waiter,
    ledger_member,
)
from hermes_sdk.server.global_order import GlobalOrder

log = logging.getLogger("hermes_sdk.server")


class GlobalAdmissionQueue(AdmissionQueue):
    """One backend's slots, granted to the best waiter of the whole cluster.

    ``weight_of(tenant)`` (fair sharing on) turns a released lease's hold time into the
    tenant's shared virtual counter increment (seconds / weight).
    """

    def __init__(
        self,
        backend: str,
        max_inflight: int,
        lease_s: float,
        rank_of: RankFn,
        *,
        order: GlobalOrder,
        ledger: SlotLedger,
        weight_of: Callable[[str], float] | None = None,
        pick_tenant: Callable[[list[str]], str] | None = None,
    ) -> None:
        super().__init__(
            backend, max_inflight, lease_s, rank_of, ledger=ledger, pick_tenant=pick_tenant
        )
        self._order = order
        self._weight_of = weight_of
        self._members: dict[str, tuple[_Waiter, str]] = {}
        """waiter id -> (local waiter, its member in the global order)."""
        self._of_run: dict[Hashable | None, set[str]] = {}
        """run_key -> waiter ids, so an event re-ranks only its run's waiters."""
        self._failing = False

    def _redis_failed(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("global admission order unavailable (%s); admitting locally", exc)
            self._failing = True

    @property
    def depth(self) -> int:
        """Requests waiting at this replica (in the cluster's order, or locally in an outage)."""
        return len(self._waiters) + len(self._members)

    def waiting(self) -> list[tuple[float, int, Hashable | None]]:
        """(rank_s, seq, run_key) of this replica's waiters, in grant order."""
        mine = [(w.rank_s, w.seq, w.run_key) for w, _ in self._members.values()]
        return sorted([*super().waiting(), *mine], key=lambda t: (t[0], t[1]))

    async def acquire(
        self,
        *,
        tenant: str,
        run_key: Hashable | None = None,
        timeout_s: float | None = None,
        cost: float = 0.0,
    ) -> Lease:
        """Take a free slot when nobody in the cluster waits, else wait for the hand-off.

        A queue with a rate budget (``cost`` tokens) keeps admitting in local order.
        """
        if self.budget is not None:
            return await super().acquire(
                tenant=tenant, run_key=run_key, timeout_s=timeout_s, cost=cost
            )
        now = self._clock()
        self.reclaim_expired(now)
        wid = secrets.token_hex(12)
        rank = math.inf
        try:
            await self._order.start()
            member, granted = self._order.enqueue(
                self.backend,
                self.max_inflight,
                self.lease_s,
                tenant=tenant,
                waiter_id=wid,
                rank=None,
            )
            if member == "?":  # nothing free: rank the request and join the order
                rank = self._safe_rank(run_key, 0.0)
                member, granted = self._order.enqueue(
                    self.backend,
                    self.max_inflight,
                    self.lease_s,
                    tenant=tenant,
                    waiter_id=wid,
                    rank=rank,
                )
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
            return await super().acquire(
                tenant=tenant, run_key=run_key, timeout_s=timeout_s, cost=cost
            )
        self._failing = False
        if member is None:
            if len(self._leases) >= self.max_inflight:  # some were released through others
                AdmissionQueue.reconcile(self)
            return self._record(wid, tenant, run_key, math.nan, now, self._clock())
        loop = asyncio.get_running_loop()
        waiter = _Waiter(rank, next(self._seq), tenant, run_key, now, loop.create_future())
        self._join(wid, waiter, member)
        self._order.watch(wid, self)
        self._order.deliver(granted)
        try:
            if timeout_s is None:
                return await asyncio.shield(waiter.future)
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout_s)
        except (asyncio.CancelledError, TimeoutError) as exc:
            self._withdraw(wid, waiter)
            if isinstance(exc, TimeoutError):
                raise QueueTimeout(
                    self.backend, self._clock() - now, self._retry_after_s()
                ) from None
            raise
        finally:
            self._leave(wid)
            self._order.unwatch(wid)

    def _join(self, wid: str, waiter: _Waiter, member: str) -> None:
        self._members[wid] = (waiter, member)
        self._of_run.setdefault(waiter.run_key, set()).add(wid)

    def _leave(self, wid: str) -> tuple[_Waiter, str] | None:
        entry = self._members.pop(wid, None)
        if entry is not None:
            wids = self._of_run.get(entry[0].run_key)
            if wids is not None:
                wids.discard(wid)
                if not wids:
                    del self._of_run[entry[0].run_key]
        return entry

    def on_grant(self, waiter_id: str) -> None:
        """The cluster granted ``waiter_id`` (lease id = waiter id): answer its long-poll."""
        entry = self._leave(waiter_id)
        if entry is None:
            return
        waiter, _ = entry
        if waiter.future.done():  # answered locally meanwhile (Redis was down): free the slot
            self._give_back(waiter.tenant, waiter_id, 0.0)
            return
        lease = self._record(
            waiter_id,
            waiter.tenant,
            waiter.run_key,
            waiter.rank_s,
            waiter.enqueued_at_s,
            self._clock(),
        )
        waiter.future.set_result(lease)

    def _withdraw(self, wid: str, waiter: _Waiter) -> None:
        """A waiter gave up (timeout, client gone): leave the order, or free a slot in flight."""
        entry = self._leave(wid)
        if entry is None:  # already granted here: release like any lease
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.future.result().lease_id)
            return
        waiter.future.cancel()
        try:
            _, granted = self._order.abandon(
                self.backend,
                self.max_inflight,
                self.lease_s,
                tenant=waiter.tenant,
                member=entry[1],
                waiter_id=wid,
            )
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
            return
        self._order.deliver(granted)

    def release(self, lease_id: str) -> bool:
        """Free a lease's slot and hand it to the cluster's best waiter."""
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return False
        charge_s = 0.0
        if self._weight_of is not None:
            held_s = max(0.0, self._clock() - lease.granted_at_s)
            charge_s = held_s / self._weight_of(lease.tenant)
        self._give_back(lease.tenant, lease_id, charge_s)
        return True

    def _give_back(self, tenant: str, lease_id: str, charge_s: float) -> None:
        try:
            _, granted = self._order.release(
                self.backend,
                self.max_inflight,
                self.lease_s,
                member=ledger_member(tenant, lease_id),
                tenant=tenant,
                charge_s=charge_s,
            )
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
            super()._dispatch()
            return
        self._order.deliver(granted)
        if self._waiters:  # local waiters (a rate-budgeted queue, or of a Redis outage)
            super()._dispatch()

    def rerank(self, run_key: Hashable) -> int:
        """Recompute ``run_key``'s waiters' ranks here and in the cluster's order."""
        moved = 0
        for wid in list(self._of_run.get(run_key, ())):
            w, member = self._members[wid]
            new = self._safe_rank(run_key, self._clock() - w.enqueued_at_s)
            if new == w.rank_s:
                continue
            w.rank_s = new
            moved += 1
            try:
                self._order.rerank(self.backend, w.tenant, member, new)
            except (redis.RedisError, OSError) as exc:
                self._redis_failed(exc)
        return moved + super().rerank(run_key)  # waiters queued locally while Redis was down

    def reconcile(self) -> int:
        """Sync leases with the ledger, grant expired slots, and repair this replica's waiters:
        a grant whose message was lost is delivered, a waiter dropped (this replica's heartbeat
        lapsed, or Redis restarted empty) rejoins at its old place."""
        gone = super().reconcile()
        if not self._members:
            return gone
        try:
            held, _ = self._order.check(
                self.backend,
                [(w.tenant, m, wid, w.rank_s) for wid, (w, m) in self._members.items()],
            )
            self._order.deliver(held)
            self._order.deliver(self._order.poke(self.backend, self.max_inflight, self.lease_s))
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
        return gone

    def _dispatch(self) -> None:
        if self._waiters:
            super()._dispatch()  # local waiters of a Redis outage
        try:
            self._order.deliver(self._order.poke(self.backend, self.max_inflight, self.lease_s))
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
            super()._dispatch()

    def release_elsewhere(self, tenant: str, lease_id: str) -> bool:
        """Release a lease another replica granted (hand-off runs here); False if not held."""
        try:
            held, granted = self._order.release(
                self.backend,
                self.max_inflight,
                self.lease_s,
                member=ledger_member(tenant, lease_id),
                tenant=tenant,
            )
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
            return False
        self._order.deliver(granted)
        return held


def admission_queue(
    backend: str,
    max_inflight: int,
    lease_s: float,
    rank_of: RankFn,
    *,
    ledger: SlotLedger | None,
    order: GlobalOrder | None,
    pick_tenant: Callable[[list[str]], str] | None = None,
    weight_of: Callable[[str], float] | None = None,
) -> AdmissionQueue:
    """A queue in the cluster's order when ``order`` and ``ledger`` are given, else a local one."""
    if order is None or ledger is None:
        return AdmissionQueue(
            backend, max_inflight, lease_s, rank_of, ledger=ledger, pick_tenant=pick_tenant
        )
    return GlobalAdmissionQueue(
        backend,
        max_inflight,
        lease_s,
        rank_of,
        order=order,
        ledger=ledger,
        weight_of=weight_of,
        pick_tenant=pick_tenant,
    )


def release_elsewhere(q: AdmissionQueue, ledger: SlotLedger, tenant: str, lease_id: str) -> bool:
    """Release on ``q``'s backend a lease another replica granted; False if not held there."""
    if isinstance(q, GlobalAdmissionQueue):
        return q.release_elsewhere(tenant, lease_id)
    return ledger.give_back(q.backend, ledger_member(tenant, lease_id))
