"""Weighted fair sharing across tenants on service actually received (VTC-style counters).

Each tenant has, per resource (backend), a virtual counter that advances by
``service_s / weight`` as its requests are served. A scheduler with several tenants waiting
asks :meth:`TenantShares.pick` for the backlogged tenant with the smallest counter and serves
that tenant's best request by the inner policy's rank (Gittins, LSTF, ...). A tenant that
becomes backlogged again has its counter lifted to the smallest counter of the tenants still
backlogged (to the largest of all when nobody is), so idle time is not banked as credit
(Sheng et al., "Fairness in Serving Large Language Models", OSDI 2024).

:class:`FairSharePolicy` wraps any policy: ranks are the inner policy's (ordering *within* a
tenant), and the wrapper carries the :class:`TenantShares` both the simulator and the server
consult to order *across* tenants. One implementation; the schedulers only call it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from hermes_sdk.errors import ConfigError
from hermes_sdk.policy.base import AppState, Policy

DEFAULT_TENANT: Final = "default"


class TenantShares:
    """Virtual counters (seconds of service / weight) per (resource, tenant).

    Mutated by one scheduler thread; not thread-safe.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, default_weight: float = 1.0):
        for tenant, w in (weights or {}).items():
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w > 0):
                raise ConfigError(f"tenant {tenant!r}: weight must be a positive number, got {w!r}")
        if not (math.isfinite(default_weight) and default_weight > 0):
            raise ConfigError(f"default_weight must be > 0, got {default_weight!r}")
        self.weights: dict[str, float] = {t: float(w) for t, w in (weights or {}).items()}
        self.default_weight = float(default_weight)
        self._counters: dict[str, dict[str, float]] = {}
        self._pending: dict[str, dict[str, int]] = {}
        self._service_s: dict[str, dict[str, float]] = {}

    def weight(self, tenant: str) -> float:
        """The tenant's weight (``default_weight`` when not configured)."""
        return self.weights.get(tenant, self.default_weight)

    def counter(self, resource: str, tenant: str) -> float:
        """The tenant's virtual counter on ``resource`` (weighted service seconds)."""
        return self._counters.get(resource, {}).get(tenant, 0.0)

    def enter(self, resource: str, tenant: str) -> None:
        """One more request of ``tenant`` waits for or runs on ``resource``.

        When the tenant was not backlogged there, its counter is lifted to the smallest counter
        of the backlogged tenants (the largest of all when none is): no banked idle credit.
        """
        pending = self._pending.setdefault(resource, {})
        n = pending.get(tenant, 0)
        pending[tenant] = n + 1
        if n:
            return
        counters = self._counters.setdefault(resource, {})
        active = [counters.get(t, 0.0) for t, k in pending.items() if k and t != tenant]
        floor = min(active) if active else max(counters.values(), default=0.0)
        counters[tenant] = max(counters.get(tenant, 0.0), floor)

    def leave(self, resource: str, tenant: str) -> None:
        """One request of ``tenant`` finished (or left) ``resource``."""
        pending = self._pending.get(resource)
        if pending is None:
            return
        n = pending.get(tenant, 0)
        if n <= 1:
            pending.pop(tenant, None)
        else:
            pending[tenant] = n - 1

    def charge(self, resource: str, tenant: str, service_s: float) -> None:
        """``tenant`` received ``service_s`` seconds of service on ``resource``."""
        if service_s <= 0.0:
            return
        counters = self._counters.setdefault(resource, {})
        counters[tenant] = counters.get(tenant, 0.0) + service_s / self.weight(tenant)
        totals = self._service_s.setdefault(resource, {})
        totals[tenant] = totals.get(tenant, 0.0) + service_s

    def refund(self, resource: str, tenant: str, service_s: float) -> None:
        """Take back ``service_s`` seconds charged (:meth:`charge`) to ``tenant`` on ``resource``
        for service it did not get after all (a request the provider refused with a 429)."""
        counters = self._counters.get(resource, {})
        if service_s <= 0.0 or tenant not in counters:
            return
        counters[tenant] -= service_s / self.weight(tenant)
        totals = self._service_s[resource]
        totals[tenant] = max(totals.get(tenant, 0.0) - service_s, 0.0)

    def pick(self, resource: str, tenants: Iterable[str]) -> str:
        """The tenant to serve next among ``tenants`` (non-empty): smallest counter, then name."""
        counters = self._counters.get(resource, {})
        return min(tenants, key=lambda t: (counters.get(t, 0.0), t))

    def service_s(self, resource: str) -> dict[str, float]:
        """Seconds of service each tenant received on ``resource`` so far."""
        return dict(self._service_s.get(resource, {}))

    def shares(self, resource: str) -> dict[str, float]:
        """Share (0-1) of ``resource``'s service each tenant received so far."""
        totals = self._service_s.get(resource, {})
        whole = sum(totals.values())
        return {t: s / whole for t, s in totals.items()} if whole > 0 else {}

    def backlogged(self, resource: str) -> list[str]:
        """Tenants with requests waiting for or running on ``resource``, sorted."""
        return sorted(t for t, n in self._pending.get(resource, {}).items() if n > 0)

    def resources(self) -> list[str]:
        """Resources that have served anything."""
        return sorted(self._service_s)


class FairSharePolicy:
    """``inner``'s ranks within a tenant; tenants ordered by :attr:`shares` (VTC counters).

    ``rank``/``order_key``/``rank_and_quantum`` are the inner policy's, so with one tenant the
    schedule is exactly the inner policy's. Build it with :func:`with_fairness`, which gives the
    wrapper only the optional methods the inner policy has.
    """

    fair_share = True

    def __init__(self, inner: Policy, shares: TenantShares) -> None:
        self.inner = inner
        self.shares = shares
        self.name = f"{inner.name}+fair"
        self.dynamic = bool(getattr(inner, "dynamic", True))
        self.time_varying = bool(getattr(inner, "time_varying", False))

    def rank(self, app: AppState, now: float) -> float:
        """The inner policy's rank (seconds, lower first) - order within the app's tenant."""
        return self.inner.rank(app, now)


class _FairQuantum(FairSharePolicy):
    def rank_and_quantum(self, app: AppState, now: float) -> tuple[float, float]:
        """The inner policy's ``(rank_s, quantum_s)``."""
        fn = self.inner.rank_and_quantum  # type: ignore[attr-defined]
        rank_s, quantum_s = fn(app, now)
        return float(rank_s), float(quantum_s)


class _FairOrdered(FairSharePolicy):
    def order_key(self, app: AppState, now: float) -> float:
        """The inner policy's time-invariant order key."""
        return float(self.inner.order_key(app, now))  # type: ignore[attr-defined]


def with_fairness(
    inner: Policy,
    weights: Mapping[str, float] | None = None,
    *,
    default_weight: float = 1.0,
) -> FairSharePolicy:
    """Wrap ``inner`` in weighted fair sharing across tenants with these ``weights``."""
    if isinstance(inner, FairSharePolicy):
        return inner
    shares = TenantShares(weights, default_weight)
    if getattr(inner, "time_varying", False) and hasattr(inner, "order_key"):
        return _FairOrdered(inner, shares)
    if hasattr(inner, "rank_and_quantum"):
        return _FairQuantum(inner, shares)
    return FairSharePolicy(inner, shares)


def tenant_shares_of(policy: Policy) -> TenantShares | None:
    """The :class:`TenantShares` of a fair-share policy, None for any other policy."""
    return policy.shares if isinstance(policy, FairSharePolicy) else None


def fairness_enabled(option: bool | None, tenants: Iterable[str]) -> bool:
    """Whether to share fairly: ``option`` when given, else when more than one tenant exists."""
    if option is not None:
        return option
    return len(set(tenants)) > 1


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    """The ``[fairness]`` table of ``hermes.toml``.

    ``enabled`` None: on when more than one tenant is configured; ``slowdown_cap`` None: no
    starvation guard; ``weights``: tenant -> weight (absent tenants weigh 1).
    """

    enabled: bool | None = None
    slowdown_cap: float | None = None
    weights: Mapping[str, float] = field(default_factory=dict)
    max_boost_s: float | None = 40.0
    """Largest rank improvement the guard may give, seconds; ``inf`` (TOML ``inf``) for none,
    which bounds every app's wait (see hermes_sdk.policy.aging)."""


def parse_fairness_table(table: Mapping[str, object]) -> FairnessConfig:
    """Validate ``[fairness]`` (``enabled``, ``slowdown_cap``, ``max_boost_s``,
    ``[fairness.weights]``)."""
    unknown = set(table) - {"enabled", "slowdown_cap", "weights", "max_boost_s"}
    if unknown:
        raise ConfigError(f"unknown key [fairness].{sorted(unknown)[0]}")
    enabled = table.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise ConfigError(f"[fairness].enabled must be true or false, got {enabled!r}")
    cap = table.get("slowdown_cap")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0
    ):
        raise ConfigError(f"[fairness].slowdown_cap must be a positive number, got {cap!r}")
    boost = table.get("max_boost_s", 40.0)
    if isinstance(boost, bool) or not isinstance(boost, (int, float)) or not boost > 0:
        raise ConfigError(f"[fairness].max_boost_s must be a positive number, got {boost!r}")
    raw = table.get("weights", {})
    if not isinstance(raw, Mapping):
        raise ConfigError("[fairness.weights] must be a table of tenant = weight")
    weights: dict[str, float] = {}
    for tenant, w in raw.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise ConfigError(f"[fairness.weights].{tenant} must be a positive number, got {w!r}")
        weights[str(tenant)] = float(w)
    return FairnessConfig(enabled, None if cap is None else float(cap), weights, float(boost))
