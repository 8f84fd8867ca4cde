"""LSTF in the simulator: a wide fan-out app and a narrow app, both with deadlines, contend.

Both have the same 7 s deadline. The wide app's remaining *service* (8 parallel calls) is ~7x
its remaining *latency*: slack on service makes it hugely negative, so it always runs first and
the narrow app (which needs more time) misses; slack on latency runs the narrow app first when
it is the tighter one, and meets at least as many deadlines as EDF (FCFS order here).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.graph.records import RunState
from hermes_sdk.policy.deadline import LSTFPolicy
from hermes_sdk.sim import OracleModel, simulate
from hermes_sdk.sim.programs import Program
from hermes_sdk.sim.workload import parse_workload

END = [{"to": "END", "p": 1.0}]


def _doc(learning: str) -> dict[str, Any]:
    def app(name: str, width: int, call_s: float, weight: float) -> dict[str, Any]:
        call = {"dist": "uniform", "low": call_s - 0.5, "high": call_s + 0.5}
        unit = {"kind": "tool", "backend": "pool", "service": call, "next": END,
                "fanout": {"dist": "deterministic", "value": width}}  # fmt: skip
        return {"name": name, "start": "u", "units": {"u": unit}, "weight": weight,
                "deadline_s": 7.0}  # fmt: skip

    return {
        "seed": 3,
        "n_apps": 600,
        "warmup_apps": 100,
        "arrival": {"process": "load", "load": 0.85},
        "backends": {"pool": {"servers": 8}},
        "learning": learning,
        "rank_samples": 100,
        # wide: 8 calls of ~2 s (16 s of service, ~2.4 s of latency); narrow: one ~4 s call
        "apps": [app("wide", 8, 2.0, 0.2), app("narrow", 1, 4.0, 0.8)],
    }


class _ServiceOnly:
    """The oracle without ``remaining_latency``: LSTF falls back to remaining service."""

    def __init__(self, model: OracleModel) -> None:
        self.model = model

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        return self.model.remaining_demand(app, state, tenant=tenant, n=n)


def test_lstf_on_latency_beats_edf_and_lstf_on_service() -> None:
    doc = _doc("oracle")
    wl = parse_workload(doc)
    programs = {a.name: Program(a, wl.backends, wl.max_stages) for a in wl.apps}
    on_service = LSTFPolicy(_ServiceOnly(OracleModel(programs, seed=wl.seed)), n=100)
    hit = {
        "edf": simulate(doc, "edf").deadline_hit_rate,
        "lstf": simulate(doc, "lstf").deadline_hit_rate,
        "lstf_service": simulate(doc, on_service).deadline_hit_rate,
    }
    assert all(v is not None for v in hit.values()), hit
    assert hit["lstf"] >= hit["edf"] + 0.03, hit  # type: ignore[operator]
    assert hit["lstf"] > hit["lstf_service"] + 0.05, hit  # type: ignore[operator]


def test_lstf_with_the_learned_graph_beats_edf() -> None:
    doc = _doc("online")
    hit = {p: simulate(doc, p).deadline_hit_rate for p in ("edf", "lstf")}
    assert hit["lstf"] >= hit["edf"] + 0.03, hit  # type: ignore[operator]
