"""Per-backend admission: at most ``max_inflight`` leases, waiters granted in (rank, arrival) order.

The queue knows nothing about policies: it asks a rank callable for a waiter's rank when the
waiter has to queue, and the scheduler calls :meth:`AdmissionQueue.rerank` when a run's state
changes so its waiting requests move. A lease not released within ``lease_s`` is reclaimed.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted slot on a backend; release it with :meth:`AdmissionQueue.release`."""

    lease_id: str
    backend: str
    tenant: str
    run_key: Hashable | None
    rank_s: float
    """Rank the request had when granted (inf = unknown run, served FCFS after ranked ones)."""
    waited_s: float
    granted_at_s: float
    """Monotonic clock time of the grant."""
    expires_at_s: float
    """Monotonic clock time after which the lease is reclaimed."""


@dataclass(slots=True)
class _Waiter:
    rank_s: float
    seq: int
    tenant: str
    run_key: Hashable | None
    enqueued_at_s: float
    future: asyncio.Future[Lease] = field(repr=False)


class QueueTimeout(Exception):
    """Raised by :meth:`AdmissionQueue.acquire` when no slot was granted in time."""

    def __init__(self, backend: str, waited_s: float, retry_after_s: float) -> None:
        super().__init__(f"no slot on backend {backend!r} within {waited_s:.3f} s")
        self.backend = backend
        self.retry_after_s = retry_after_s


RankFn = Callable[[Hashable | None], float]


class AdmissionQueue:
    """Slots of one backend and the requests waiting for them.

    ``rank_of(run_key)`` returns a waiter's rank in seconds (lower first); it is called only
    when a request has to wait, so a free slot is granted without ranking anything.
    """

    def __init__(
        self,
        backend: str,
        max_inflight: int,
        lease_s: float,
        rank_of: RankFn,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.max_inflight = max_inflight
        self.lease_s = lease_s
        self._rank_of = rank_of
        self._clock = clock
        self._seq = itertools.count()
        self._waiters: list[_Waiter] = []
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
        return [(w.rank_s, w.seq, w.run_key) for w in sorted(self._waiters, key=_order)]

    def lease(self, lease_id: str) -> Lease | None:
        """The live lease with this id, if any."""
        return self._leases.get(lease_id)

    async def acquire(
        self, *, tenant: str, run_key: Hashable | None = None, timeout_s: float | None = None
    ) -> Lease:
        """Wait for a slot and return its lease; raises QueueTimeout after ``timeout_s``.

        Cancelling the caller (e.g. the HTTP client went away) removes the waiter; a lease
        granted in the same instant is released again, so no slot leaks.
        """
        now = self._clock()
        self.reclaim_expired(now)
        if not self._waiters and len(self._leases) < self.max_inflight:
            return self._grant(tenant, run_key, math.nan, now, now)
        rank = self._safe_rank(run_key)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(rank, next(self._seq), tenant, run_key, now, loop.create_future())
        self._waiters.append(waiter)
        self._dispatch()
        try:
            if timeout_s is None:
                return await asyncio.shield(waiter.future)
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout_s)
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
        self._dispatch()
        return True

    def rerank(self, run_key: Hashable) -> int:
        """Recompute the rank of every waiter of ``run_key``; returns how many moved."""
        moved = 0
        for w in self._waiters:
            if w.run_key == run_key:
                new = self._safe_rank(run_key)
                if new != w.rank_s:
                    w.rank_s = new
                    moved += 1
        return moved

    def reclaim_expired(self, now: float | None = None) -> int:
        """Reclaim leases held past ``lease_s``; returns how many."""
        now = self._clock() if now is None else now
        expired = [lid for lid, lease in self._leases.items() if lease.expires_at_s <= now]
        for lid in expired:
            del self._leases[lid]
        self.reclaimed += len(expired)
        if expired:
            self._dispatch()
        return len(expired)

    def _grant(
        self,
        tenant: str,
        run_key: Hashable | None,
        rank_s: float,
        enqueued_at_s: float,
        now: float,
    ) -> Lease:
        lease = Lease(
            lease_id=secrets.token_hex(12),
            backend=self.backend,
            tenant=tenant,
            run_key=run_key,
            rank_s=rank_s,
            waited_s=max(0.0, now - enqueued_at_s),
            granted_at_s=now,
            expires_at_s=now + self.lease_s,
        )
        self._leases[lease.lease_id] = lease
        self.granted += 1
        return lease

    def _dispatch(self) -> None:
        now = self._clock()
        while self._waiters and len(self._leases) < self.max_inflight:
            best = min(self._waiters, key=_order)
            self._waiters.remove(best)
            if best.future.done():
                continue
            best.future.set_result(
                self._grant(best.tenant, best.run_key, best.rank_s, best.enqueued_at_s, now)
            )

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.future.done() and not waiter.future.cancelled():
            self.release(waiter.future.result().lease_id)
        else:
            waiter.future.cancel()

    def _safe_rank(self, run_key: Hashable | None) -> float:
        rank = self._rank_of(run_key)
        return math.inf if math.isnan(rank) else rank

    def _retry_after_s(self) -> float:
        return 1.0 if self._leases else 0.1


def _order(w: _Waiter) -> tuple[float, int]:
    return (w.rank_s, w.seq)
