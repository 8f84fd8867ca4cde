"""What only the simulator knows about a run: its true remaining latency if served alone.

Read by clairvoyant bench policies (``deadline_oracle``, :mod:`hermes_sdk.policy.deadline_oracle`)
through ``AppState.true_remaining_latency_s``; the same pricing as
:func:`~hermes_sdk.sim.programs.alone_latencies` that
:meth:`~hermes_sdk.sim.programs.Program.standalone_s` sums, applied to what is left of the run.
"""

from __future__ import annotations

from collections.abc import Mapping

from hermes_sdk.sim.programs import alone_latencies
from hermes_sdk.sim.sim_types import SimApp


def true_remaining_latency(app: SimApp, speed1: Mapping[str, float]) -> float:
    """Seconds ``app`` still needs if every backend served it at once from now on: what is left
    of the running stage's longest call (its service so far spread evenly over the calls, the
    simulator's per-call ``elapsed``) plus each later stage's longest call, each at one slot's
    speed (``speed1``: backend -> speed with one request running)."""
    if app.stage_i >= len(app.stages):
        return 0.0
    stage = app.stages[app.stage_i]
    per_call = app.stage_attained_s / max(1, stage.width)
    left = max(max(stage.services_s) - per_call, 0.0) / speed1[stage.unit.backend]
    return sum([left, *alone_latencies(app.stages[app.stage_i + 1 :], speed1)])
