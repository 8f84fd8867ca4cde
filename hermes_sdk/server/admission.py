"""Per-backend admission: at most ``max_inflight`` leases, waiters granted in (rank, arrival) order.

The queue knows nothing about policies: it asks a rank callable for a waiter's rank when the
waiter has to queue, and the scheduler calls :meth:`AdmissionQueue.rerank` when a run's state
changes so its waiting requests move. A lease not released within ``lease_s`` is reclaimed. The
lease, the timeout and the protocols of a budget and a shared ledger are in
:mod:`~hermes_sdk.server.admission_contracts` (re-exported here).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import secrets
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from hermes_sdk.server.admission_contracts import (
    Budget,
    CostRankFn,
    Lease,
    QueueTimeout,
    RankFn,
    SlotLedger,
    ledger_member,
)
from hermes_sdk.server.budget_backfill import BACKFILL_SCAN
from hermes_sdk.server.heap_order import ascending

__all__ = [
    "SHARED_RETRY_S",
    "AdmissionQueue",
    "Budget",
    "CostRankFn",
    "Lease",
    "QueueTimeout",
    "RankFn",
    "SlotLedger",
    "ledger_member",
]


@dataclass(slots=True)
class _Waiter:
    rank_s: float
    seq: int
    tenant: str
    run_key: Hashable | None
    enqueued_at_s: float
    future: asyncio.Future[Lease] = field(repr=False)
    cost: float = 0.0


SHARED_RETRY_S: Final = 0.02
"""How soon a queue retries a grant the shared ledger refused (another replica holds the slot)."""


class AdmissionQueue:
    """Slots of one backend and the requests waiting for them.

    ``rank_of(run_key, waited_s)`` returns a waiter's rank in seconds (lower first); it is
    called only when a request has to wait, so a free slot is granted without ranking anything.
    """

    def __init__(
        self,
        backend: str,
        max_inflight: int,
        lease_s: float,
        rank_of: RankFn,
        *,
        clock: Callable[[], float] = time.monotonic,
        ledger: SlotLedger | None = None,
        pick_tenant: Callable[[list[str]], str] | None = None,
    ) -> None:
        self.backend = backend
        self._pick_tenant = pick_tenant
        """Fair sharing: which of the waiting tenants is served next (None: by rank only)."""
        self._ledger = ledger
        self._retry: asyncio.TimerHandle | None = None
        self.max_inflight = max_inflight
        self.lease_s = lease_s
        self._rank_of = rank_of
        self._clock = clock
        self._seq = itertools.count()
        self.budget: Budget | None = None
        """Rate budget the best waiter must also fit (None: slots only); the queue waits for it
        in order, so nobody overtakes the best waiter while it waits for the budget."""
        self._budget_retry: asyncio.TimerHandle | None = None
        self.budget_rank: CostRankFn | None = None
        """Ranks this queue's waiters in place of ``rank_of`` (a budget's own measure of demand:
        :mod:`~hermes_sdk.server.budget_rank`); None: ``rank_of``."""
        self.on_budget_grant: Callable[[str, float], None] | None = None
        """Called with (tenant, tokens) for each request granted under the :attr:`budget`, when
        its tokens are taken (fair shares charge a budget's tenants the tokens they take, not the
        seconds they hold a slot)."""
        self._waiters: dict[int, _Waiter] = {}
        """Waiting requests by ``seq``."""
        self._heap: list[tuple[float, int]] = []
        """(rank_s, seq) of waiters; an entry whose waiter left or was re-ranked is skipped."""
        self._by_run: dict[Hashable | None, set[int]] = {}
        """run_key -> seqs of its waiters, so an event re-ranks only that run's waiters."""
        self._leases: dict[str, Lease] = {}
        self.reclaimed = 0
        self.granted = 0

    @property
    def inflight(self) -> int:
        """Leases currently held."""
        return len(self._leases)

    @property
    def depth(self) -> int:
        """Requests currently waiting."""
        return len(self._waiters)

    def waiting(self) -> list[tuple[float, int, Hashable | None]]:
        """(rank_s, seq, run_key) of every waiter, in grant order."""
        return [(w.rank_s, w.seq, w.run_key) for w in sorted(self._waiters.values(), key=_order)]

    def lease(self, lease_id: str) -> Lease | None:
        """The live lease with this id, if any."""
        return self._leases.get(lease_id)

    async def acquire(
        self,
        *,
        tenant: str,
        run_key: Hashable | None = None,
        timeout_s: float | None = None,
        cost: float = 0.0,
    ) -> Lease:
        """Wait for a slot and return its lease; raises QueueTimeout after ``timeout_s``.

        ``cost`` is the request's tokens, charged to the :attr:`budget` when it is granted.

        Cancelling the caller (e.g. the HTTP client went away) removes the waiter; a lease
        granted in the same instant is released again, so no slot leaks. The caller awaits the
        waiter's future directly (no shield, no ``wait_for`` task), so a grant reaches it on the
        next event-loop turn.
        """
        now = self._clock()
        self.reclaim_expired(now)
        if (
            not self._waiters
            and len(self._leases) < self.max_inflight
            and (self.budget is None or self.budget.try_take(cost) == 0.0)
        ):
            lease = self._grant(tenant, run_key, math.nan, now, now)
            if lease is not None:
                self._budget_granted(tenant, cost)
                return lease
            if self.budget is not None:
                self.budget.refund(cost)
        rank = self._safe_rank(run_key, 0.0, cost)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(rank, next(self._seq), tenant, run_key, now, loop.create_future(), cost)
        self._add(waiter)
        self._dispatch()
        try:  # the future itself, not a shield or wait_for: a grant wakes the caller next turn
            if timeout_s is None:
                return await waiter.future
            async with asyncio.timeout(timeout_s):
                return await waiter.future
        except (asyncio.CancelledError, TimeoutError) as exc:
            self._abandon(waiter)
            if isinstance(exc, TimeoutError):
                raise QueueTimeout(
                    self.backend, self._clock() - now, self._retry_after_s()
                ) from None
            raise

    def release(self, lease_id: str) -> bool:
        """Free a lease's slot and grant it to the best waiter; False if unknown or reclaimed."""
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return False
        if self._ledger is not None:
            self._ledger.give_back(self.backend, ledger_member(lease.tenant, lease_id))
        self._dispatch()
        return True

    def renew(self, lease_id: str) -> Lease | None:
        """Extend a live lease to ``lease_s`` from now (for long calls); None if it is gone."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return None
        renewed = replace(lease, expires_at_s=self._clock() + self.lease_s)
        self._leases[lease_id] = renewed
        if self._ledger is not None:
            self._ledger.extend(self.backend, ledger_member(lease.tenant, lease_id), self.lease_s)
        return renewed

    def rerank(self, run_key: Hashable) -> int:
        """Recompute the rank of every waiter of ``run_key``; returns how many moved."""
        moved = 0
        for seq in list(self._by_run.get(run_key, ())):
            w = self._waiters[seq]
            new = self._safe_rank(run_key, self._clock() - w.enqueued_at_s, w.cost)
            if new != w.rank_s:
                w.rank_s = new
                heapq.heappush(self._heap, (new, seq))
                moved += 1
        self._compact()
        return moved

    def _compact(self) -> None:
        """Drop the heap's skipped entries once they outnumber the live ones."""
        if len(self._heap) > 4 * len(self._waiters) + 64:
            self._heap = [(w.rank_s, w.seq) for w in self._waiters.values()]
            heapq.heapify(self._heap)

    def reclaim_expired(self, now: float | None = None) -> int:
        """Reclaim leases held past ``lease_s`` (and not renewed elsewhere); returns how many."""
        now = self._clock() if now is None else now
        expired = [lid for lid, lease in self._leases.items() if lease.expires_at_s <= now]
        if expired and self._ledger is not None:
            self.reconcile()  # a lease renewed through another replica is not expired
            expired = [lid for lid, lease in self._leases.items() if lease.expires_at_s <= now]
        for lid in expired:
            lease = self._leases.pop(lid)
            if self._ledger is not None:
                self._ledger.give_back(self.backend, ledger_member(lease.tenant, lid))
        self.reclaimed += len(expired)
        if expired:
            self._dispatch()
        return len(expired)

    def reconcile(self) -> int:
        """Sync local leases with the shared ledger; returns how many were released elsewhere.

        A lease released through another replica (or expired there) is dropped here and its slot
        granted again; one renewed elsewhere gets the ledger's expiry.
        """
        if self._ledger is None or not self._leases:
            return 0
        now, now_unix = self._clock(), time.time()
        gone = 0
        for lid, lease in list(self._leases.items()):
            try:
                expires_unix = self._ledger.expiry(self.backend, ledger_member(lease.tenant, lid))
            except Exception:  # ledger unreachable: keep what we have
                return gone
            if expires_unix is None or expires_unix <= now_unix:
                del self._leases[lid]
                gone += 1
            else:
                self._leases[lid] = replace(lease, expires_at_s=now + expires_unix - now_unix)
        if gone:
            self._dispatch()
        return gone

    def _grant(
        self,
        tenant: str,
        run_key: Hashable | None,
        rank_s: float,
        enqueued_at_s: float,
        now: float,
    ) -> Lease | None:
        lease_id = secrets.token_hex(12)
        if self._ledger is not None and not self._ledger.try_take(
            self.backend, ledger_member(tenant, lease_id), self.max_inflight, self.lease_s
        ):
            return None
        return self._record(lease_id, tenant, run_key, rank_s, enqueued_at_s, now)

    def _record(
        self,
        lease_id: str,
        tenant: str,
        run_key: Hashable | None,
        rank_s: float,
        enqueued_at_s: float,
        now: float,
    ) -> Lease:
        """Holds and counts a lease granted at `now` to a waiter queued at `enqueued_at_s`."""
        lease = Lease(
            lease_id=lease_id,
            backend=self.backend,
            tenant=tenant,
            run_key=run_key,
            rank_s=rank_s,
            waited_s=max(0.0, now - enqueued_at_s),
            granted_at_s=now,
            expires_at_s=now + self.lease_s,
        )
        self._leases[lease_id] = lease
        self.granted += 1
        return lease

    def _dispatch(self) -> None:
        now = self._clock()
        while self._waiters and len(self._leases) < self.max_inflight:
            best = self._next_waiter()
            if best.future.done():
                self._remove(best)
                continue
            if self.budget is not None:  # a reservation for the best, backfilling behind it
                seq, wait_s = self.budget.admit(self._budget_order(best), self._cost_of)
                if seq is None:
                    self._budget_later(wait_s)
                    return
                best = self._waiters[seq]
            lease = self._grant(best.tenant, best.run_key, best.rank_s, best.enqueued_at_s, now)
            if lease is None:  # another replica holds the shared slots: look again soon
                if self.budget is not None:
                    self.budget.refund(best.cost)
                self._retry_later()
                return
            self._remove(best)
            self._budget_granted(best.tenant, best.cost)
            best.future.set_result(lease)

    def _next_waiter(self) -> _Waiter:
        """Best-ranked waiter, of the tenant fair sharing picks when several are waiting."""
        if self._pick_tenant is not None:
            tenants = sorted({w.tenant for w in self._waiters.values()})
            if len(tenants) > 1:
                chosen = self._pick_tenant(tenants)
                return min((w for w in self._waiters.values() if w.tenant == chosen), key=_order)
        heap = self._heap
        while True:  # the best live entry (O(log n) per skipped one), not a scan of every waiter
            rank_s, seq = heap[0]
            w = self._waiters.get(seq)
            if w is not None and w.rank_s == rank_s:
                return w
            heapq.heappop(heap)

    def _budget_order(self, best: _Waiter) -> Iterator[tuple[int, float]]:
        """(seq, cost) of ``best`` then of the next best live waiters (a budget's backfill).

        With fair sharing ``best`` is the best of the tenant it picked, and that tenant's other
        waiters are offered first (in rank order), then the other tenants' by rank: the tokens
        the holder does not need go to whom fair sharing serves, and to others only when none
        of its requests fits (nothing idles that could be sent)."""
        yield best.seq, best.cost
        if self._pick_tenant is None:  # the heap's next live entries: no scan of every waiter
            seen = {best.seq}
            for rank_s, seq in ascending(self._heap):
                w = self._waiters.get(seq)
                if w is None or w.rank_s != rank_s or seq in seen or w.future.done():
                    continue  # removed, reranked, already offered (pushed twice) or gone
                seen.add(seq)
                yield seq, w.cost
                if len(seen) == BACKFILL_SCAN:
                    return
            return
        tenant = best.tenant
        rest = (w for w in self._waiters.values() if w is not best and not w.future.done())
        key = lambda w: (w.tenant != tenant, w.rank_s, w.seq)  # noqa: E731
        for w in heapq.nsmallest(BACKFILL_SCAN - 1, rest, key=key):
            yield w.seq, w.cost

    def _budget_granted(self, tenant: str, cost: float) -> None:
        if self.budget is not None and self.on_budget_grant is not None:
            self.on_budget_grant(tenant, cost)

    def _cost_of(self, seq: int) -> float | None:
        w = self._waiters.get(seq)
        return None if w is None or w.future.done() else w.cost

    def _add(self, waiter: _Waiter) -> None:
        self._waiters[waiter.seq] = waiter
        self._by_run.setdefault(waiter.run_key, set()).add(waiter.seq)
        heapq.heappush(self._heap, (waiter.rank_s, waiter.seq))
        self._compact()

    def _remove(self, waiter: _Waiter) -> None:
        if self._waiters.pop(waiter.seq, None) is None:
            return
        seqs = self._by_run.get(waiter.run_key)
        if seqs is not None:
            seqs.discard(waiter.seq)
            if not seqs:
                del self._by_run[waiter.run_key]
        if not self._waiters:
            self._heap.clear()

    def _retry_later(self) -> None:
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(SHARED_RETRY_S, self._retried)

    def _budget_later(self, wait_s: float) -> None:
        """Dispatch again in ``wait_s`` (sooner if a new best waiter needs less)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + wait_s
        if self._budget_retry is not None:
            if self._budget_retry.when() <= due:
                return
            self._budget_retry.cancel()
        self._budget_retry = loop.call_at(due, self._budget_retried)

    def _budget_retried(self) -> None:
        self._budget_retry = None
        self._dispatch()

    def _retried(self) -> None:
        self._retry = None
        self._dispatch()

    def _abandon(self, waiter: _Waiter) -> None:
        self._remove(waiter)
        if waiter.future.done() and not waiter.future.cancelled():
            self.release(waiter.future.result().lease_id)
        else:
            waiter.future.cancel()

    def _safe_rank(self, run_key: Hashable | None, waited_s: float, cost: float = 0.0) -> float:
        if self.budget_rank is not None:
            rank = self.budget_rank(run_key, waited_s, cost)
        else:
            rank = self._rank_of(run_key, waited_s)
        return math.inf if math.isnan(rank) else rank

    def _retry_after_s(self) -> float:
        return 1.0 if self._leases else 0.1


def _order(w: _Waiter) -> tuple[float, int]:
    return (w.rank_s, w.seq)
