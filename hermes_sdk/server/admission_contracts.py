"""What the admission queue hands out and what it is plugged into: the lease, the timeout, the
rank callables' types, and the protocols of a rate budget and of a shared slot ledger.

Split from :mod:`~hermes_sdk.server.admission` (which re-exports every name), so the budget and
ledger implementations can name these contracts without the queue itself.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted slot on a backend; release it with
    :meth:`~hermes_sdk.server.admission.AdmissionQueue.release`."""

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


class QueueTimeout(Exception):
    """Raised by :meth:`~hermes_sdk.server.admission.AdmissionQueue.acquire` when no slot was
    granted in time."""

    def __init__(self, backend: str, waited_s: float, retry_after_s: float) -> None:
        super().__init__(f"no slot on backend {backend!r} within {waited_s:.3f} s")
        self.backend = backend
        self.retry_after_s = retry_after_s


RankFn = Callable[[Hashable | None, float], float]
"""``rank_of(run_key, waited_s)``: rank in seconds of a request that has waited ``waited_s``."""
CostRankFn = Callable[[Hashable | None, float, float], float]
"""``rank_of(run_key, waited_s, cost)``: the rank of a request of ``cost`` budget tokens."""


class Budget(Protocol):
    """A rate budget on top of the slots (a hosted provider's requests and tokens per minute)."""

    def try_take(self, cost_tokens: float) -> float:
        """Charge a request of ``cost_tokens`` and return 0.0, or charge nothing and return the
        seconds to wait before asking again."""
        ...

    def refund(self, cost_tokens: float) -> None:
        """Give back a charge that was not used."""
        ...

    def admit(
        self, order: Iterable[tuple[int, float]], cost_of: Callable[[int], float | None]
    ) -> tuple[int | None, float]:
        """Charge and name the waiter (``seq``) to grant among ``order`` ((seq, cost), best
        first), or (None, seconds to wait before asking again)."""
        ...


class SlotLedger(Protocol):
    """A backend's slots shared by several scheduler replicas (e.g. a Redis sorted set).

    Members are ``"<tenant>/<lease_id>"``, so any replica can release or renew a lease for its
    tenant, and the replica that granted it learns about that by
    :meth:`~hermes_sdk.server.admission.AdmissionQueue.reconcile`.
    """

    def try_take(self, backend: str, member: str, max_inflight: int, lease_s: float) -> bool:
        """Take one of ``max_inflight`` slots for ``lease_s`` seconds; False when all are held."""
        ...

    def give_back(self, backend: str, member: str) -> bool:
        """Return a slot; False if it was not held (already released or expired)."""
        ...

    def extend(self, backend: str, member: str, lease_s: float) -> bool:
        """Push a held slot's expiry to ``lease_s`` seconds from now; False if not held."""
        ...

    def expiry(self, backend: str, member: str) -> float | None:
        """Unix time the held slot expires, or None if it is not held."""
        ...


def ledger_member(tenant: str, lease_id: str) -> str:
    """The ledger's name for a lease."""
    return f"{tenant}/{lease_id}"
