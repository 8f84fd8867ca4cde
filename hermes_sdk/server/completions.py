"""Completion times of ended runs, per (tenant, app), in fixed-size windows (bounded memory).

The scheduler records each run that ends (:meth:`CompletionLog.record`); the per-app-class
endpoints (:mod:`hermes_sdk.server.app_classes`) copy the runs they need on the event loop
(:meth:`CompletionLog.window`, ~12 ms at the cap) and summarise the copy in a worker thread
(:func:`per_app`, :func:`per_tenant`; ~65 ms at the cap). Each (tenant, app) keeps
its last :data:`RUNS_PER_CLASS` ended runs in a ring of numpy arrays (17 bytes a run), and at
most :data:`MAX_CLASSES` pairs are kept (the least recently ended pair is dropped first), so the
log never holds more than ``MAX_CLASSES * RUNS_PER_CLASS`` runs (about 17 MB) whatever the
clients send. The log is in memory and per replica: a restart starts it empty.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.wire.app_classes import AppClassStats

log = logging.getLogger("hermes_sdk.server")

RUNS_PER_CLASS: Final = 500
"""Ended runs kept per (tenant, app)."""
MAX_CLASSES: Final = 2000
"""(tenant, app) pairs kept; a new pair beyond this drops the least recently ended one."""


class _Ring:
    """The last ``capacity`` ended runs of one (tenant, app): end time, completion time, failed."""

    __slots__ = ("ended_s", "failed", "n", "next", "took_s")

    def __init__(self, capacity: int) -> None:
        self.ended_s: NDArray[np.float64] = np.empty(capacity)
        self.took_s: NDArray[np.float64] = np.empty(capacity)
        self.failed: NDArray[np.bool_] = np.empty(capacity, dtype=bool)
        self.n = 0
        self.next = 0

    def add(self, ended_s: float, took_s: float, failed: bool) -> None:
        i = self.next
        self.ended_s[i], self.took_s[i], self.failed[i] = ended_s, took_s, failed
        self.next = (i + 1) % len(self.took_s)
        self.n = min(self.n + 1, len(self.took_s))

    def since(self, cutoff_s: float | None) -> tuple[NDArray[np.float64], int]:
        """(completion times of the completed runs, failed count) among those ended at or
        after ``cutoff_s`` (every kept run when None)."""
        keep = np.ones(self.n, dtype=bool)
        if cutoff_s is not None:
            keep &= self.ended_s[: self.n] >= cutoff_s
        failed = self.failed[: self.n]
        return self.took_s[: self.n][keep & ~failed], int(np.count_nonzero(keep & failed))


class Ended(NamedTuple):
    """A copy of one (tenant, app)'s kept runs inside a window."""

    tenant: str
    app: str
    took_s: NDArray[np.float64]
    """Completion times of the completed (not failed) runs, seconds."""
    failed: int
    """Runs that ended failed."""


def class_stats(app: str, took_s: NDArray[np.float64], failed: int) -> AppClassStats:
    """Count, mean, P95 (linear interpolation, as ``np.percentile``) and max, in seconds."""
    if not took_s.size:
        return AppClassStats(app, 0, failed, None, None, None)
    return AppClassStats(
        app,
        int(took_s.size),
        failed,
        float(np.mean(took_s)),
        float(np.percentile(took_s, 95)),
        float(np.max(took_s)),
    )


def per_app(window: Iterable[Ended]) -> list[AppClassStats]:
    """One entry per app, by name, pooling the window's runs of it over tenants."""
    pooled: dict[str, tuple[list[NDArray[np.float64]], list[int]]] = {}
    for e in window:
        parts, failed = pooled.setdefault(e.app, ([], []))
        parts.append(e.took_s)
        failed.append(e.failed)
    return [
        class_stats(app, np.concatenate(parts), sum(failed))
        for app, (parts, failed) in sorted(pooled.items())
    ]


def per_tenant(window: Iterable[Ended]) -> dict[str, list[AppClassStats]]:
    """Each tenant's own apps, by tenant then app name."""
    out: dict[str, list[AppClassStats]] = {}
    for e in sorted(window, key=lambda e: (e.tenant, e.app)):
        out.setdefault(e.tenant, []).append(class_stats(e.app, e.took_s, e.failed))
    return out


class CompletionLog:
    """Ended runs' completion times per (tenant, app); mutated on the event loop only."""

    def __init__(
        self, runs_per_class: int = RUNS_PER_CLASS, max_classes: int = MAX_CLASSES
    ) -> None:
        self.runs_per_class = runs_per_class
        self.max_classes = max_classes
        self._rings: OrderedDict[tuple[str, str], _Ring] = OrderedDict()
        self.dropped_classes = 0
        """(tenant, app) pairs dropped to stay within ``max_classes``."""

    def record(self, tenant: str, app: str, ended_s: float, took_s: float, failed: bool) -> None:
        """A run of ``app`` ended at ``ended_s`` (unix seconds) after ``took_s`` active seconds."""
        key = (tenant, app)
        ring = self._rings.get(key)
        if ring is None:
            if len(self._rings) >= self.max_classes:
                self._rings.popitem(last=False)
                if not self.dropped_classes:
                    log.warning(
                        "completion log: more than %d (tenant, app) pairs; the least recently "
                        "ended are dropped",
                        self.max_classes,
                    )
                self.dropped_classes += 1
            ring = self._rings[key] = _Ring(self.runs_per_class)
        else:
            self._rings.move_to_end(key)
        ring.add(ended_s, max(0.0, took_s), failed)

    def window(self, cutoff_s: float | None = None, tenant: str | None = None) -> list[Ended]:
        """Copies of the runs that ended at or after ``cutoff_s`` (unix seconds; None: every
        kept run), of ``tenant`` only when given; pairs with no such run are left out."""
        out = []
        for (t, app), ring in self._rings.items():
            if tenant is None or t == tenant:
                took, failed = ring.since(cutoff_s)
                if took.size or failed:
                    out.append(Ended(t, app, took, failed))
        return out
