"""Starvation guard: an app's effective rank improves the longer it has been in the system.

Gittins serves the app most likely to finish soon; under sustained load a big app can wait
behind an endless stream of smaller ones. :class:`AgingPolicy` lowers the inner rank by
``(now - arrival_s) / slowdown_cap`` seconds per second in the system::

    effective_rank = rank - (now - arrival_s) / slowdown_cap

which orders apps exactly like the time-invariant key ``rank + arrival_s / slowdown_cap``, i.e.
earliest *virtual deadline* ``arrival_s + slowdown_cap * rank`` first. The improvement is capped
at ``max_boost_s`` (seconds of rank): without a cap, a long overload turns the order into
app-FCFS (every old app overtakes every newcomer) and the mean and the worst slowdown explode;
with it, apps that have waited long compete among themselves by the inner rank again. Past the
cap the key of a queued request is a tag fixed when it was ranked (re-ranked at its next event).
Apps that arrive close together keep the inner (Gittins) order; an app that has waited about
``slowdown_cap`` times its rank overtakes newcomers whose rank is up to ``max_boost_s`` smaller.
The knobs trade mean for tail: a small cap (or large boost) approaches app-FCFS, a large cap (or
small boost) pure Gittins. Only the uncapped guard (``max_boost_s`` None or ``inf``) bounds the
wait outright: an app whose rank stays at most ``r`` is never overtaken by an app arriving more
than ``slowdown_cap * r`` seconds after it (ranks are >= 0), so only the finitely many apps that
arrive before then can delay it. Queues compare :meth:`AgingPolicy.order_key`, so waiting
requests need no re-ranking as time passes.
"""

from __future__ import annotations

import math
from typing import Final

from hermes_sdk.errors import ConfigError
from hermes_sdk.policy.base import AppState, Policy

DEFAULT_SLOWDOWN_CAP: Final = 10.0
"""Default virtual-deadline factor (dimensionless): deadline = arrival + cap x rank."""
DEFAULT_MAX_BOOST_S: Final = 40.0
"""Default largest rank improvement aging may give, seconds (None: unbounded)."""


class AgingPolicy:
    """``inner`` with aging: rank falls by ``1 / slowdown_cap`` seconds per second since arrival."""

    dynamic = True
    time_varying = True
    """Ranks fall with time; queues order by :meth:`order_key`."""

    def __init__(
        self,
        inner: Policy,
        slowdown_cap: float = DEFAULT_SLOWDOWN_CAP,
        max_boost_s: float | None = DEFAULT_MAX_BOOST_S,
    ) -> None:
        if not (
            isinstance(slowdown_cap, (int, float))
            and math.isfinite(slowdown_cap)
            and slowdown_cap > 0
        ):
            raise ConfigError(f"slowdown_cap must be a positive number, got {slowdown_cap!r}")
        if max_boost_s is not None and not max_boost_s > 0:  # also rejects NaN
            raise ConfigError(f"max_boost_s must be a positive number, got {max_boost_s!r}")
        if max_boost_s is not None and math.isinf(max_boost_s):
            max_boost_s = None
        self.inner = inner
        self.slowdown_cap = float(slowdown_cap)
        self.max_boost_s = max_boost_s
        self._horizon_s = math.inf if max_boost_s is None else max_boost_s * self.slowdown_cap
        self.name = f"{inner.name}_aging"
        self._inner_key = (
            getattr(inner, "order_key", None) if getattr(inner, "time_varying", False) else None
        )

    def _key(self, app: AppState, now: float) -> float:
        if self._inner_key is not None:
            return float(self._inner_key(app, now))
        return float(self.inner.rank(app, now))

    def rank(self, app: AppState, now: float) -> float:
        """Inner rank minus the time in the system divided by the cap (seconds)."""
        age_s = min(now - app.arrival_s, self._horizon_s)
        return float(self.inner.rank(app, now)) - age_s / self.slowdown_cap

    def order_key(self, app: AppState, now: float) -> float:
        """Time-invariant key with the order of :meth:`rank` at any common ``now``."""
        return self._key(app, now) + self.age_key(app.arrival_s, now)

    def age_key(self, arrival_s: float, now: float) -> float:
        """The aging term of a time-invariant key (seconds): ``arrival_s / slowdown_cap``, the
        arrival clamped to ``now - max_boost_s * slowdown_cap`` (the boost's cap); add it to
        any rank in seconds that waits from ``arrival_s``."""
        return max(arrival_s, now - self._horizon_s) / self.slowdown_cap


def with_aging(
    inner: Policy, slowdown_cap: float | None, max_boost_s: float | None = DEFAULT_MAX_BOOST_S
) -> Policy:
    """``inner`` wrapped in :class:`AgingPolicy`, or ``inner`` itself when the cap is None."""
    if slowdown_cap is None or isinstance(inner, AgingPolicy):
        return inner
    return AgingPolicy(inner, slowdown_cap, max_boost_s)
