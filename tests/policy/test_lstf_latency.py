"""LSTF's slack uses predicted remaining latency (deadlines are on wall-clock time), not service."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import Call, RunPath, RunState, Stage
from hermes_sdk.policy import AppState
from hermes_sdk.policy.deadline import LatencyModel, LSTFPolicy


def _registry() -> GraphRegistry:
    """``wide``: 8 parallel 2 s calls (16 s service, 2 s latency); ``narrow``: one 4 s call."""
    reg = GraphRegistry()
    for i in range(50):
        wide = Stage("map", tuple(Call(2.0) for _ in range(8)))
        reg.observe(RunPath(app="wide", run_id=f"w{i}", stages=(wide,), started_at=float(i)))
        narrow = Stage("tool", (Call(4.0),))
        reg.observe(RunPath(app="narrow", run_id=f"n{i}", stages=(narrow,), started_at=float(i)))
    return reg


def _app(name: str, deadline_s: float) -> AppState:
    return AppState(app=name, run_id=name, arrival_s=0.0, state=RunState(), deadline_s=deadline_s)


class ServiceOnly:
    """A demand model without ``remaining_latency`` (LSTF must fall back to service)."""

    def __init__(self, reg: GraphRegistry) -> None:
        self.reg = reg

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        return self.reg.remaining_demand(app, state, tenant=tenant, n=n)


def test_slack_is_deadline_minus_remaining_latency() -> None:
    reg = _registry()
    assert isinstance(reg, LatencyModel)
    lstf = LSTFPolicy(reg, n=200)
    wide, narrow = _app("wide", 6.0), _app("narrow", 6.0)
    assert lstf.rank(wide, 0.0) == 6.0 - 2.0  # latency 2 s, not 16 s of service
    assert lstf.rank(narrow, 0.0) == 6.0 - 4.0
    assert lstf.rank(narrow, 0.0) < lstf.rank(wide, 0.0)  # the narrow app is the urgent one
    assert lstf.order_key(wide, 1.0) == 4.0


def test_models_without_latency_fall_back_to_service() -> None:
    model = ServiceOnly(_registry())
    assert not isinstance(model, LatencyModel)
    lstf = LSTFPolicy(model, n=200)
    assert lstf.rank(_app("wide", 6.0), 0.0) == 6.0 - 16.0
    assert lstf.rank(_app("wide", 6.0), 0.0) < lstf.rank(_app("narrow", 6.0), 0.0)


def test_demotion_uses_latency_too() -> None:
    lstf = LSTFPolicy(_registry(), n=200, demote_infeasible=True)
    # 3 s left: the wide app (2 s of latency) can still make it; with service (16 s) it could not
    assert lstf.rank(_app("wide", 3.0), 0.0) == 1.0
    assert lstf.rank(_app("narrow", 3.0), 0.0) > 1e8  # 4 s > 3 s: demoted
