"""A lower bound on the worst slowdown any policy can reach on one simulated run.

Slowdown is completion time / own standalone time (the simulator's ``SimResult.slowdowns``).
If every measured app ``i`` (arrival ``a_i``, standalone ``s_i``) finishes within slowdown ``S``,
it finishes by ``d_i = a_i + S * s_i``, so all of its work on each backend ``b`` (``w_ib``
seconds at speed 1) is served inside ``[a_i, d_i]``. A backend delivers at most ``c_b`` service
seconds per second (its best ``k * speed(k)``), hence for every window ``[t1, t2]``::

    sum of w_ib over apps with t1 <= a_i and d_i <= t2   <=   c_b * (t2 - t1)

(the demand-bound condition of real-time scheduling). The smallest ``S`` meeting it for every
window and backend is a lower bound on the worst slowdown of *every* policy, clairvoyant and
offline ones included: it drops precedence between stages, per-call parallelism limits, cold
starts and the warm-up apps, all of which only make schedules worse. For one preemptive server
and one call per app the condition is also sufficient (EDF on the deadlines ``d_i`` meets them),
so there the bound is exact; tests check both facts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.sim.run import draw_runs
from hermes_sdk.sim.workload import BackendSpec, Workload, parse_workload

_ROWS: int = 256
"""Windows (start apps) checked per vectorised block; bounds memory at rows x apps floats."""


@dataclass(frozen=True, slots=True)
class SlowdownBound:
    """The bound and the backend whose windows set it."""

    value: float
    """No policy's worst slowdown over the measured apps is below this."""
    backend: str
    """The backend whose demand bound binds (empty when the bound is the trivial 1)."""


def peak_capacity(spec: BackendSpec) -> float:
    """Most service seconds per second ``spec`` can deliver with any number of running calls."""
    if spec.servers is None:
        return math.inf
    return max(k * spec.speed_at(k) for k in range(1, spec.servers + 1))


def _feasible(
    arrival: NDArray[np.float64],
    standalone: NDArray[np.float64],
    work: NDArray[np.float64],
    capacity: float,
    slowdown: float,
) -> bool:
    """Whether the demand-bound condition holds on one backend with deadlines at ``slowdown``."""
    deadline = arrival + slowdown * standalone
    order = np.argsort(deadline, kind="stable")
    d_sorted, w_sorted, pos = deadline[order], work[order], np.argsort(arrival, kind="stable")
    rank_by_arrival = np.empty_like(pos)
    rank_by_arrival[pos] = np.arange(pos.size)
    later = rank_by_arrival[order]  # arrival rank of each app, in deadline order
    starts = arrival[pos]
    for lo in range(0, starts.size, _ROWS):
        j = np.arange(lo, min(lo + _ROWS, starts.size))
        demand = np.cumsum(np.where(later[None, :] >= j[:, None], w_sorted[None, :], 0.0), axis=1)
        supply = capacity * np.maximum(d_sorted[None, :] - starts[j, None], 0.0)
        if np.any(demand > supply * (1.0 + 1e-12) + 1e-9):
            return False
    return True


def max_slowdown_lower_bound(
    workload: Mapping[str, Any] | Workload, *, seed: int | None = None, tol: float = 1e-3
) -> SlowdownBound:
    """The smallest worst slowdown the demand-bound condition allows on ``workload``'s run for
    ``seed`` (the apps and arrivals :func:`hermes_sdk.sim.simulate` draws), within relative
    ``tol``. Measured apps only, as in ``SimResult.slowdowns``."""
    wl = workload if isinstance(workload, Workload) else parse_workload(workload)
    _, apps = draw_runs(wl, wl.seed if seed is None else int(seed))
    measured = apps[wl.warmup_apps :]
    arrival = np.array([a.arrival_s for a in measured], dtype=np.float64)
    standalone = np.array([a.standalone_s for a in measured], dtype=np.float64)
    best = SlowdownBound(1.0, "")
    for name, spec in wl.backends.items():
        capacity = peak_capacity(spec)
        work = np.array(
            [sum(s.service_s for s in a.stages if s.unit.backend == name) for a in measured],
            dtype=np.float64,
        )
        if not math.isfinite(capacity) or not work.any():
            continue
        if _feasible(arrival, standalone, work, capacity, best.value):
            continue
        lo, hi = best.value, 2.0 * best.value
        while not _feasible(arrival, standalone, work, capacity, hi):
            lo, hi = hi, 2.0 * hi
        while hi - lo > tol * lo:
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if _feasible(arrival, standalone, work, capacity, mid) else (mid, hi)
        best = SlowdownBound(hi, name)
    return best
